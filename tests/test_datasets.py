"""Datasets read by row from files of every supported kind, and the recipe on images and a user's model."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from trainers.datasets import load_dataset
from trainers.networks import build_model
from trainers.rows import NpyRows

N = 60


def images(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).random((n, 3, 4, 4), dtype=np.float32)
    x[:, 0, 0, 0] = np.arange(n)  # the row says which id it is
    return x, np.arange(n) % 5


def check_rows(data, x: np.ndarray, y: np.ndarray) -> None:
    ids = np.array([7, 3, 3, data.n - 1])
    xb, yb = data.train.batch(ids)
    rows = data.train.ids[ids] if data.train.ids is not None else ids
    np.testing.assert_array_equal(xb.numpy(), x[rows])
    np.testing.assert_array_equal(yb.numpy(), y[rows])
    held_out = data.train.ids is not None
    assert data.n + len(data.test) == len(y) + (0 if held_out else len(data.test)) and data.num_classes == 5


def test_npy_directory_reads_rows_with_pread(tmp_path):
    x, y = images()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    data = load_dataset(str(tmp_path))
    assert isinstance(data.train.rows, NpyRows) and data.input_shape == (3, 4, 4)
    assert data.n == 48  # a stratified 20 % held out
    check_rows(data, x, y)


def test_npz_stored_is_read_by_row_and_compressed_is_loaded(tmp_path):
    x, y = images()
    np.savez(tmp_path / "s.npz", x=x, y=y, x_test=x[:10], y_test=y[:10])
    stored = load_dataset(str(tmp_path / "s.npz"))
    assert isinstance(stored.train.rows, NpyRows) and stored.n == N and len(stored.test) == 10
    check_rows(stored, x, y)
    np.savez_compressed(tmp_path / "c.npz", x=x, y=y)
    check_rows(load_dataset(str(tmp_path / "c.npz")), x, y)


def test_parquet_numeric_list_and_image_columns(tmp_path):
    x, y = images()
    flat = x.reshape(N, -1)
    numeric = pa.table({"label": y, **{f"f{j}": flat[:, j] for j in range(flat.shape[1])}})
    pq.write_table(numeric, tmp_path / "numeric.parquet", row_group_size=16)
    check_rows(load_dataset(str(tmp_path / "numeric.parquet")), flat, y)

    lists = pa.table(
        {"label": y, "x": pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])}
    )
    with pa.OSFile(str(tmp_path / "lists.arrow"), "wb") as f, pa.ipc.new_file(f, lists.schema) as w:
        w.write_table(lists)
    check_rows(load_dataset(str(tmp_path / "lists.arrow")), flat, y)

    pixels = (np.arange(N)[:, None, None] * np.ones((1, 4, 4))).astype(np.uint8)
    pngs = []
    for p in pixels:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    pq.write_table(pa.table({"label": y, "image": pa.array(pngs, pa.binary())}), tmp_path / "img.parquet")
    data = load_dataset(str(tmp_path / "img.parquet"))
    assert data.input_shape == (1, 4, 4)
    check_rows(data, pixels[:, None].astype(np.float32) / 255.0, y)


def test_bad_files_are_refused_by_name(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="must contain x.npy and y.npy"):
        load_dataset(str(tmp_path))
    pq.write_table(pa.table({"label": [1], "name": ["a"]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="features must be numeric columns"):
        load_dataset(str(tmp_path / "t.parquet"))


def tiny_model(input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(input_shape)), num_classes))


def test_models_by_name_and_by_module_callable():
    assert build_model("cnn", (3, 8, 8), 4)(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    assert build_model("tests.test_datasets:tiny_model", (3, 4, 4), 5)(torch.zeros(2, 3, 4, 4)).shape == (
        2,
        5,
    )
    with pytest.raises(ValueError, match="cannot load model 'nowhere:nothing'"):
        build_model("nowhere:nothing", (3,), 2)
    with pytest.raises(ValueError, match="the cnn model needs C x H x W inputs"):
        build_model("cnn", (12,), 2)


def test_the_recipe_trains_a_cnn_on_an_image_directory(ray_session, tmp_path):
    from trainers.driver import run_training
    from trainers.train_config import TrainConfig

    x = np.random.default_rng(1).standard_normal((200, 3, 8, 8)).astype(np.float32)
    y = np.arange(200) % 3
    x[np.arange(200), y, :2, :2] += 3.0  # a class signal
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    cfg = TrainConfig.create(
        run="images-cnn", dataset=str(tmp_path), model="cnn", workers=0, epochs=3, warm_start=1,
        cycle_length=1, batch_size=16, storage_path=str(tmp_path / "ckpt"),
    )  # fmt: skip
    summary = run_training(cfg, out=lambda _: None)
    assert summary["rounds"] == 3 and summary["ingested"] == summary["sample_passes"]
    assert summary["final_test_accuracy"] > 0.6  # chance is 1/3
    import ray

    from scorer_service.ray.actor import get_store

    ray.kill(get_store("images-cnn"))


def _write_idx(path, array, gz):
    import gzip
    import struct

    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    a = np.ascontiguousarray(array)
    header = bytes([0, 0, codes[a.dtype], a.ndim]) + struct.pack(f">{a.ndim}i", *a.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(header + a.tobytes())


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_read_back_and_make_a_dataset(tmp_path, gz):
    from trainers.idx import SPLIT_FILES, read_idx

    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 50).astype(np.uint8),
        rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 20).astype(np.uint8),
    ]
    for name, a in zip(SPLIT_FILES, arrays, strict=True):
        _write_idx(tmp_path / (name + (".gz" if gz else "")), a, gz)
    ints = np.arange(12, dtype=">i4").reshape(3, 4)
    _write_idx(tmp_path / "ints.idx", ints, False)
    assert read_idx(tmp_path / "ints.idx").tolist() == ints.tolist()
    d = load_dataset(str(tmp_path))
    assert (d.n, d.input_shape, len(d.test)) == (50, (1, 28, 28), 20)
    x, y = d.train.batch([3])
    assert np.allclose(x.numpy()[0, 0], arrays[0][3] / 255.0) and y.tolist() == [arrays[1][3]]
    fm = load_dataset(f"fashion-mnist:n=40,noise=0.5,path={tmp_path}", seed=1)
    assert (fm.n, fm.num_classes) == (40, 10) and 0 < fm.noisy.mean() < 1
    assert np.all((fm.train.y != arrays[1][:40]) == fm.noisy)


def test_fashion_mnist_missing_says_how_to_install_it(tmp_path, monkeypatch):
    from trainers import datasets

    monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    monkeypatch.delenv(datasets.FASHION_MNIST_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    with pytest.raises(ValueError, match="unknown fashion-mnist parameter 'size'"):
        load_dataset("fashion-mnist:size=3")


def test_a_malformed_idx_file_is_named(tmp_path):
    from trainers.idx import read_idx

    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((4, 4), np.uint8), False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="bytes of data for shape"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("name", ["convnet", "resnet", "cnn"])
def test_image_models_classify_28x28_images(name):
    import torch

    from trainers.networks import build_model

    model = build_model(name, (1, 28, 28), 10)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert isinstance(list(model.modules())[-1], torch.nn.Linear)  # embeddings read its input
    with pytest.raises(ValueError, match=f"the {name} model needs C x H x W"):
        build_model(name, (784,), 10)

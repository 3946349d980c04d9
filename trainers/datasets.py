"""Datasets by name or path: the embedded default (digits), synthetic data, and a user's files.

Every dataset is a map-style ``torch.utils.data.Dataset`` of ``(x, y)`` by sample id whose rows
are read on demand: a rank reads the rows of its shard, never a full copy of the data. Sources:

- ``digits`` (scikit-learn's 8x8 images, shipped with the package), ``synthetic[:...]`` and
  ``images[:...]`` (generated), in memory;
- ``fashion-mnist[:...]``, read from its IDX files (:func:`fashion_mnist` says where they are found);
- a directory of IDX files (``train-images-idx3-ubyte`` and the three others, gzipped or not);
- a directory with ``x.npy`` and ``y.npy`` (and optionally ``x_test.npy``, ``y_test.npy``), or an
  ``.npz`` with those arrays stored uncompressed: rows of any shape (N x C x H x W images, ...)
  read straight from the file;
- a Parquet or Arrow (IPC/Feather) table with a ``label`` column and either numeric feature
  columns, one fixed-size-list column, or one binary column of encoded images (PNG, JPEG).

Without a test split, a stratified 20 % of the ids is held out (seeded); only labels are read for it.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers.idx import idx_files, read_idx_dataset
from trainers.images import digits_arrays
from trainers.rows import InMemoryRows, RowReader, TableRows, npy_rows, npz_rows


class ArrayDataset(torch.utils.data.Dataset):
    """``(x, y)`` by sample id over a row reader; ``ids`` maps dataset positions to reader rows."""

    def __init__(self, rows: RowReader, y: np.ndarray, ids: np.ndarray | None = None) -> None:
        self.rows, self.y, self.ids = rows, np.asarray(y, dtype=np.int64), ids

    def __len__(self) -> int:
        return len(self.y)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.rows.shape[1:])

    def batch(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``index`` as float32 features and int64 labels."""
        index = np.asarray(index, dtype=np.int64)
        rows = index if self.ids is None else self.ids[index]
        x = torch.from_numpy(np.ascontiguousarray(self.rows.take(rows), dtype=np.float32))
        return x, torch.from_numpy(self.y[index])

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """One sample, or a whole batch for a list of indices (a ``BatchSampler`` with ``batch_size=None``
        in the ``DataLoader``): one read per batch instead of per sample."""
        if isinstance(index, int | np.integer):
            x, y = self.batch([index])
            return x[0], y[0]
        return self.batch(index)


@dataclass
class Dataset:
    name: str
    train: ArrayDataset
    test: ArrayDataset
    num_classes: int
    # Which training labels were corrupted (synthetic label noise), for noise benchmarks.
    noisy: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.train)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.shape[1:]


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=y)


def _in_memory(name: str, x_tr, y_tr, x_te, y_te, noisy=None) -> Dataset:
    train = ArrayDataset(InMemoryRows(np.ascontiguousarray(x_tr, dtype=np.float32)), y_tr)
    test = ArrayDataset(InMemoryRows(np.ascontiguousarray(x_te, dtype=np.float32)), y_te)
    return Dataset(name, train, test, int(max(y_tr.max(), y_te.max())) + 1, noisy)


def digits() -> Dataset:
    """scikit-learn's handwritten digits: 1,797 real 8x8 images, 10 classes, shipped with the package.

    Fixed stratified split (seed 0): 1,437 train / 360 test; pixels scaled to [0, 1].
    """
    x_tr, x_te, y_tr, y_te = digits_arrays()
    return _in_memory("digits", x_tr, y_tr, x_te, y_te)


def synthetic(n: int = 5000, classes: int = 10, noise: float = 0.0, dim: int = 32, seed: int = 0) -> Dataset:
    """A Gaussian-cluster classification problem with ``noise`` symmetric label noise on train labels.

    Test labels stay clean, so test accuracy measures what was learned despite the noise.
    """
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    total = int(n / 0.8)
    x, y = make_classification(
        n_samples=total,
        n_features=dim,
        n_informative=max(2, dim // 2),
        n_redundant=0,
        n_classes=classes,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=seed,
    )
    x_tr, x_te, y_tr, y_te = train_test_split(
        x.astype(np.float32), y, test_size=total - n, random_state=seed, stratify=y
    )
    y_tr, noisy = _flip_labels(y_tr, classes, noise, seed)
    return _in_memory(f"synthetic-n{n}-c{classes}-noise{noise:g}", x_tr, y_tr, x_te, y_te, noisy)


def _flip_labels(y: np.ndarray, classes: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric label noise: a share ``noise`` of the labels, each replaced by another class at random."""
    rng = np.random.default_rng(seed + 1)
    noisy = rng.random(len(y)) < noise
    shift = rng.integers(1, classes, size=len(y))
    return np.where(noisy, (y + shift) % classes, y), noisy


def images(n: int = 2000, classes: int = 10, noise: float = 0.0, size: int = 16, seed: int = 0) -> Dataset:
    """Image-shaped data for the CNN workload: 3 x size x size images of ``classes`` smooth random
    patterns, each sample shifted by up to 2 pixels and drowned in pixel noise; ``noise`` symmetric
    label noise on the training labels (test labels clean). 20 % more samples are made for the test set.
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((classes, 3, 4, 4)).astype(np.float32)
    patterns = np.kron(coarse, np.ones((1, 1, size // 4, size // 4), dtype=np.float32))
    total = int(n * 1.2)
    y = rng.integers(0, classes, size=total)
    shifts = rng.integers(-2, 3, size=(total, 2))
    x = np.stack([np.roll(patterns[c], tuple(s), axis=(1, 2)) for c, s in zip(y, shifts, strict=True)])
    x += 3.0 * rng.standard_normal(x.shape).astype(np.float32)
    y_tr, noisy = _flip_labels(y[:n], classes, noise, seed)
    return _in_memory(f"images-n{n}-c{classes}-noise{noise:g}", x[:n], y_tr, x[n:], y[n:], noisy)


FASHION_MNIST_ENV = "CURRICULUM_FASHION_MNIST"
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
# Per-pixel mean and standard deviation of Fashion-MNIST's training images (pixels in [0, 1]).
_FASHION_MNIST_NORM = (0.2860, 0.3530)


def fashion_mnist(n: int = 60_000, noise: float = 0.0, seed: int = 0, path: str | None = None) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): 70,000 28x28 grey images of 10 kinds of clothing, read from its
    IDX files: the first ``n`` of the 60,000 training images (already in random order), all 10,000
    test images, ``noise`` symmetric label noise on the training labels (test labels clean).

    Found in ``path``, else ``$CURRICULUM_FASHION_MNIST``, else Debian's ``dataset-fashion-mnist``
    package (``/usr/share/datasets/fashion-mnist``).
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    if not 1 <= n <= 60_000:
        raise ValueError(f"n must be in [1, 60000], got {n}")
    candidates = [path] if path else [os.environ.get(FASHION_MNIST_ENV), *FASHION_MNIST_DIRS]
    found = next((Path(c) for c in candidates if c and idx_files(Path(c)) is not None), None)
    if found is None:
        raise FileNotFoundError(
            f"Fashion-MNIST's IDX files (train-images-idx3-ubyte[.gz] and the three others) are not in "
            f"{' or '.join(c for c in candidates if c)}: install them with `apt-get install "
            f"dataset-fashion-mnist` (Debian, Ubuntu) or set {FASHION_MNIST_ENV} to their directory"
        )
    x_tr, y_tr, x_te, y_te = read_idx_dataset(found)
    mean, std = _FASHION_MNIST_NORM
    x_tr, x_te = ((x.astype(np.float32) / 255.0 - mean) / std for x in (x_tr[:n], x_te))
    y_tr, noisy = _flip_labels(y_tr[:n].astype(np.int64), 10, noise, seed)
    data = _in_memory(f"fashion-mnist-n{n}-noise{noise:g}", x_tr[:, None], y_tr, x_te[:, None], y_te, noisy)
    data.num_classes = 10
    return data


def _split(
    name: str, x: RowReader, y: np.ndarray, test: tuple[RowReader, np.ndarray] | None, seed: int
) -> Dataset:
    y = np.asarray(y, dtype=np.int64)
    if len(y) != len(x):
        raise ValueError(f"{name}: {len(x)} rows of x but {len(y)} labels")
    if test is not None:
        train, held = ArrayDataset(x, y), ArrayDataset(test[0], test[1])
        classes = max(int(y.max()), int(np.max(test[1]))) + 1
    else:
        tr, te = _stratified_split(y, 0.2, seed)
        train, held = ArrayDataset(x, y[tr], tr), ArrayDataset(x, y[te], te)
        classes = int(y.max()) + 1
    return Dataset(name, train, held, classes)


def _labels(reader: RowReader) -> np.ndarray:
    return reader.take(np.arange(len(reader))).reshape(-1)


def from_directory(path: Path, seed: int) -> Dataset:
    if idx_files(path) is not None:
        x_tr, y_tr, x_te, y_te = read_idx_dataset(path)
        scale = 255.0 if x_tr.dtype == np.uint8 else 1.0
        x_tr, x_te = (
            x.astype(np.float32)[:, None] / scale if x.ndim == 3 else x / scale for x in (x_tr, x_te)
        )
        return _in_memory(path.name, x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64))

    def rows(name: str) -> RowReader | None:
        p = path / f"{name}.npy"
        return npy_rows(str(p)) if p.exists() else None

    x, y = rows("x"), rows("y")
    if x is None or y is None:
        raise ValueError(f"{path} must contain x.npy and y.npy")
    xt, yt = rows("x_test"), rows("y_test")
    test = (xt, _labels(yt)) if xt is not None and yt is not None else None
    return _split(path.name, x, _labels(y), test, seed)


def from_npz(path: Path, seed: int) -> Dataset:
    with zipfile.ZipFile(path) as z:
        names = {n.removesuffix(".npy") for n in z.namelist()}
    if not {"x", "y"} <= names:
        raise ValueError(f"{path} must contain arrays 'x' and 'y', has {sorted(names)}")
    rows = {n: npz_rows(str(path), n) for n in ("x", "y", "x_test", "y_test") if n in names}
    test = (rows["x_test"], _labels(rows["y_test"])) if {"x_test", "y_test"} <= names else None
    return _split(path.stem, rows["x"], _labels(rows["y"]), test, seed)


def from_table(path: Path, seed: int) -> Dataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = (
        pq.read_schema(path)
        if path.suffix == ".parquet"
        else pa.ipc.open_file(pa.memory_map(str(path))).schema
    )
    if "label" not in schema.names:
        raise ValueError(f"{path} has no 'label' column (columns: {schema.names})")
    cols = [c for c in schema.names if c != "label"]
    types = [schema.field(c).type for c in cols]
    if len(cols) == 1 and pa.types.is_fixed_size_list(types[0]):
        kind = "list"
    elif len(cols) == 1 and (pa.types.is_binary(types[0]) or pa.types.is_large_binary(types[0])):
        kind = "image"
    elif cols and all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        kind = "numeric"
    else:
        raise ValueError(
            f"{path}: features must be numeric columns, one fixed-size-list column or one binary image "
            f"column, got {dict(zip(cols, map(str, types), strict=True))}"
        )
    table = pq.read_table(path, columns=["label"]) if path.suffix == ".parquet" else None
    y = (table if table is not None else pa.ipc.open_file(pa.memory_map(str(path))).read_all()).column(
        "label"
    )
    return _split(path.stem, TableRows(str(path), cols, kind), y.to_numpy(), None, seed)


def _parameters(name: str, args: str, allowed: tuple[str, ...], seed: int) -> dict[str, Any]:
    """``key=value,...`` of a built-in dataset's spec: ``noise`` a float, ``path`` text, the rest ints."""
    kwargs: dict[str, Any] = {"seed": seed}
    for part in filter(None, args.split(",")):
        key, _, value = part.partition("=")
        if key not in allowed:
            raise ValueError(f"unknown {name} parameter {key!r} (use {', '.join(allowed)})")
        try:
            kwargs[key] = value if key == "path" else float(value) if key == "noise" else int(value)
        except ValueError:
            raise ValueError(f"{name} parameter {key} must be a number, got {value!r}") from None
    return kwargs


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """``digits``, ``synthetic`` (optionally ``synthetic:n=20000,classes=10,noise=0.4,dim=32``), ``images``
    (``images:n=2000,classes=10,noise=0.4,size=16``, image-shaped for the cnn model),
    ``fashion-mnist`` (``fashion-mnist:n=20000,noise=0.4``, from its IDX files) or a path."""
    name, _, args = spec.partition(":")
    if name == "digits":
        return digits()
    if name == "fashion-mnist":
        return fashion_mnist(**_parameters(name, args, ("n", "noise", "path"), seed))
    if name in ("synthetic", "images"):
        allowed = ("n", "classes", "noise", "dim" if name == "synthetic" else "size", "seed")
        return (synthetic if name == "synthetic" else images)(**_parameters(name, args, allowed, seed))
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"dataset {spec} does not exist")
    if p.is_dir():
        return from_directory(p, seed)
    if p.suffix == ".npz":
        return from_npz(p, seed)
    if p.suffix in (".parquet", ".arrow", ".feather", ".ipc"):
        return from_table(p, seed)
    raise ValueError(f"unsupported dataset {spec!r}; use a directory of .npy files, .npz, .parquet or .arrow")

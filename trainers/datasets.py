"""Datasets by name or path: the embedded default (digits), synthetic data, and user tables.

Everything is loaded as in-memory tensors indexed by sample id: the curriculum hands each rank
a list of ids per round, so random access by id is the access pattern that matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainers.images import digits_arrays


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    # Which training labels were corrupted (synthetic label noise), for noise benchmarks.
    noisy: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def input_dim(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)


def _tensors(name: str, x_tr, y_tr, x_te, y_te, noisy=None) -> Dataset:
    y_all = np.concatenate([y_tr, y_te])
    return Dataset(
        name=name,
        x_train=torch.as_tensor(np.ascontiguousarray(x_tr), dtype=torch.float32),
        y_train=torch.as_tensor(y_tr, dtype=torch.int64),
        x_test=torch.as_tensor(np.ascontiguousarray(x_te), dtype=torch.float32),
        y_test=torch.as_tensor(y_te, dtype=torch.int64),
        num_classes=int(y_all.max()) + 1,
        noisy=noisy,
    )


def digits() -> Dataset:
    """scikit-learn's handwritten digits: 1,797 real 8x8 images, 10 classes, shipped with the package.

    Fixed stratified split (seed 0): 1,437 train / 360 test; pixels scaled to [0, 1].
    """
    x_tr, x_te, y_tr, y_te = digits_arrays()
    return _tensors("digits", x_tr, y_tr, x_te, y_te)


def synthetic(n: int = 5000, classes: int = 10, noise: float = 0.0, dim: int = 32, seed: int = 0) -> Dataset:
    """A Gaussian-cluster classification problem with ``noise`` symmetric label noise on train labels.

    Test labels stay clean, so test accuracy measures what was learned despite the noise.
    """
    from sklearn.datasets import make_classification

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
    x_tr, x_te, y_tr, y_te = _split(x.astype(np.float32), y, total - n, seed)
    rng = np.random.default_rng(seed + 1)
    noisy = rng.random(len(y_tr)) < noise
    # Symmetric noise: a corrupted label is uniform over the *other* classes.
    shift = rng.integers(1, classes, size=len(y_tr))
    y_tr = np.where(noisy, (y_tr + shift) % classes, y_tr)
    return _tensors(f"synthetic-n{n}-c{classes}-noise{noise:g}", x_tr, y_tr, x_te, y_te, noisy)


def from_file(path: str, seed: int = 0) -> Dataset:
    """A user's table: ``.npz`` with ``x``, ``y`` (and optional ``x_test``, ``y_test``), or a
    Parquet / Arrow (IPC/Feather) table with a ``label`` column and numeric feature columns.

    Without a test split, a stratified 20 % is held out (seeded).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise ValueError(f"{path} must contain arrays 'x' and 'y', has {sorted(z.files)}")
            x, y = z["x"].reshape(len(z["y"]), -1).astype(np.float32), z["y"].astype(np.int64)
            if "x_test" in z and "y_test" in z:
                xt = z["x_test"].reshape(len(z["y_test"]), -1).astype(np.float32)
                return _tensors(p.stem, x, y, xt, z["y_test"].astype(np.int64))
    elif p.suffix in (".parquet", ".arrow", ".feather", ".ipc"):
        import pyarrow.feather as feather
        import pyarrow.parquet as pq

        table = pq.read_table(p) if p.suffix == ".parquet" else feather.read_table(p)
        if "label" not in table.column_names:
            raise ValueError(f"{path} has no 'label' column (columns: {table.column_names})")
        features = [c for c in table.column_names if c != "label"]
        x = np.column_stack([table.column(c).to_numpy() for c in features]).astype(np.float32)
        y = table.column("label").to_numpy().astype(np.int64)
    else:
        raise ValueError(f"unsupported dataset file type {p.suffix!r}; use .npz, .parquet or .arrow")
    x_tr, x_te, y_tr, y_te = _split(x, y, 0.2, seed)
    return _tensors(p.stem, x_tr, y_tr, x_te, y_te)


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """``digits``, ``synthetic`` (optionally ``synthetic:n=20000,classes=10,noise=0.4,dim=32``) or a path."""
    name, _, args = spec.partition(":")
    if name == "digits":
        return digits()
    if name == "synthetic":
        kwargs: dict[str, float | int] = {"seed": seed}
        for part in filter(None, args.split(",")):
            key, _, value = part.partition("=")
            if key not in ("n", "classes", "noise", "dim", "seed"):
                raise ValueError(f"unknown synthetic parameter {key!r} (use n, classes, noise, dim, seed)")
            kwargs[key] = float(value) if key == "noise" else int(value)
        return synthetic(**kwargs)
    return from_file(spec, seed)

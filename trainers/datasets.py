"""Datasets by name or path: the embedded default (digits), synthetic data, and a user's files.

Every dataset is a map-style ``torch.utils.data.Dataset`` of ``(x, y)`` by sample id whose rows
are read on demand: a rank reads the rows of its shard, never a full copy of the data. Sources:

- ``digits`` (scikit-learn's 8x8 images, shipped with the package) and ``synthetic[:...]``, in memory;
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
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers.images import digits_arrays


class RowReader:
    """Rows ``x[i]`` of an array: ``take(ids) -> (len(ids), *shape)``."""

    shape: tuple[int, ...]

    def take(self, ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]


class InMemoryRows(RowReader):
    def __init__(self, x: np.ndarray) -> None:
        self.x, self.shape = x, x.shape

    def take(self, ids: np.ndarray) -> np.ndarray:
        return self.x[ids]


class NpyRows(RowReader):
    """Rows of a C-ordered ``.npy`` array (or an uncompressed ``.npz`` member) read with ``pread``.

    Reads go through the page cache into a batch-sized buffer: unlike a memory map, the rows read
    do not stay mapped into the reading process, so its memory does not grow with the data seen.
    """

    def __init__(self, path: str, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._fd: int | None = None
        self._pid = -1

    def _file(self) -> int:
        # One descriptor per process: DataLoader workers are forked after the dataset is built.
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def take(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), *self.shape[1:]), dtype=self.dtype)
        flat = out.reshape(len(ids), -1).view(np.uint8)
        fd = self._file()
        for j, i in enumerate(ids.tolist()):
            got = os.preadv(fd, [flat[j]], self.offset + i * self.row_bytes)
            if got != self.row_bytes:
                raise OSError(f"{self.path}: short read of row {i}")
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}


def _npy_header(f: Any, path: str) -> tuple[tuple[int, ...], np.dtype, int]:
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"{path}: .npy format version {version} is not supported")
    shape, fortran, dtype = readers[version](f)
    if fortran or dtype.hasobject:
        raise ValueError(f"{path}: only C-ordered arrays of plain values can be read by row")
    return shape, dtype, f.tell()


def npy_rows(path: str) -> NpyRows:
    with open(path, "rb") as f:
        shape, dtype, offset = _npy_header(f, path)
    return NpyRows(path, offset, shape, dtype)


def npz_rows(path: str, name: str) -> RowReader:
    """A member of an ``.npz``: read by row when stored uncompressed, else loaded (compressed zip)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"{name}.npy")
        stored = info.compress_type == zipfile.ZIP_STORED
    if not stored:
        with np.load(path, allow_pickle=False) as npz:
            return InMemoryRows(npz[name])
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        shape, dtype, offset = _npy_header(f, path)
    return NpyRows(path, offset, shape, dtype)


class TableRows(RowReader):
    """Feature rows of a Parquet / Arrow table, decoded one row group at a time (a few kept)."""

    def __init__(self, path: str, columns: list[str], kind: str, cached_groups: int = 4) -> None:
        import pyarrow.parquet as pq

        self.path, self.columns, self.kind = path, columns, kind
        self.parquet = path.endswith(".parquet")
        if self.parquet:
            meta = pq.ParquetFile(path).metadata
            sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        else:
            sizes = [len(self._table())]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.cached_groups = cached_groups
        self.shape = (int(self.starts[-1]), *self._group(0).shape[1:])

    def _table(self) -> Any:
        import pyarrow as pa

        # Arrow IPC is memory-mapped: taking rows touches only their pages.
        return pa.ipc.open_file(pa.memory_map(self.path)).read_all()

    def _group(self, g: int) -> np.ndarray:
        if g not in self._cache:
            import pyarrow.parquet as pq

            table = (
                pq.ParquetFile(self.path).read_row_group(g, self.columns) if self.parquet else self._table()
            )
            self._cache[g] = features(table, self.columns, self.kind)
            while len(self._cache) > self.cached_groups:
                self._cache.popitem(last=False)
        return self._cache[g]

    def take(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        group = np.searchsorted(self.starts, ids, side="right") - 1
        out = np.empty((len(ids), *self.shape[1:]), dtype=np.float32)
        for g in np.unique(group).tolist():
            mask = group == g
            out[mask] = self._group(g)[ids[mask] - self.starts[g]]
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": OrderedDict()}


def features(table: Any, columns: list[str], kind: str) -> np.ndarray:
    """A table's feature columns as a float32 array: numeric columns side by side, a fixed-size-list
    column as rows, or a binary column of encoded images decoded (pixels scaled to [0, 1])."""
    if kind == "numeric":
        return np.column_stack([table.column(c).to_numpy() for c in columns]).astype(np.float32)
    col = table.column(columns[0]).combine_chunks()
    if kind == "list":
        return col.values.to_numpy(zero_copy_only=False).reshape(len(col), -1).astype(np.float32)
    import io

    from PIL import Image

    images = [np.asarray(Image.open(io.BytesIO(b)), dtype=np.float32) / 255.0 for b in col.to_pylist()]
    x = np.stack(images)
    return x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)  # N x C x H x W


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
    rng = np.random.default_rng(seed + 1)
    noisy = rng.random(len(y_tr)) < noise
    # Symmetric noise: a corrupted label is uniform over the *other* classes.
    shift = rng.integers(1, classes, size=len(y_tr))
    y_tr = np.where(noisy, (y_tr + shift) % classes, y_tr)
    return _in_memory(f"synthetic-n{n}-c{classes}-noise{noise:g}", x_tr, y_tr, x_te, y_te, noisy)


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

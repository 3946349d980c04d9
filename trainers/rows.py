"""Rows of a training set's features, read on demand: from memory, a ``.npy`` file (or an
uncompressed ``.npz`` member) with ``pread``, or a Parquet / Arrow table one row group at a time."""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np


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
        assert self._fd is not None  # opened by this process
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

"""IDX files, the format MNIST, Fashion-MNIST and KMNIST ship in (LeCun et al.), gzipped or not.

An IDX file is two zero bytes, a type code (0x08: unsigned byte, ...), the number of dimensions,
each dimension as a big-endian int32, then the values in row-major order, big-endian.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# The four files of a dataset split the MNIST way, by their names without ".gz".
SPLIT_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def read_idx(path: Path | str) -> np.ndarray:
    """The array in the IDX file ``path`` (``.gz``: gzipped); ValueError naming what is malformed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise ValueError(f"{path} is not an IDX file (its first bytes are {raw[:4].hex()})")
    ndim, dtype = raw[3], _TYPES[raw[2]]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path}: {len(raw) - header} bytes of data for shape {shape} of {dtype}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_files(directory: Path) -> list[Path] | None:
    """The four files of a dataset in ``directory`` (each gzipped or not), or None if one is missing."""
    found = []
    for name in SPLIT_FILES:
        plain, packed = directory / name, directory / f"{name}.gz"
        path = plain if plain.is_file() else packed if packed.is_file() else None
        if path is None:
            return None
        found.append(path)
    return found


def read_idx_dataset(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` from the four IDX files in ``directory``."""
    files = idx_files(directory)
    if files is None:
        raise FileNotFoundError(f"{directory} lacks one of {', '.join(SPLIT_FILES)} (or its .gz)")
    x_tr, y_tr, x_te, y_te = (read_idx(p) for p in files)
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise ValueError(
            f"{directory}: {len(x_tr)} / {len(x_te)} images but {len(y_tr)} / {len(y_te)} labels"
        )
    return x_tr, y_tr, x_te, y_te

"""Top-k over score vectors of any length, ties to the lowest index."""

from __future__ import annotations

import numpy as np


def _smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest ``keys``, smallest first; equal keys by lowest position, also at
    the k-th place (``argpartition`` alone picks an arbitrary subset of the ties there)."""
    n = keys.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        kth = keys[np.argpartition(keys, k - 1)[k - 1]]
        below = np.flatnonzero(keys < kth)
        part = np.concatenate([below, np.flatnonzero(keys == kth)[: k - below.size]])
    else:
        part = np.arange(n)
    return part[np.lexsort((part, keys[part]))].astype(np.int64)


def top_k(scores: np.ndarray, k: int, *, largest: bool = True) -> np.ndarray:
    """Indices of the ``k`` largest (or smallest) scores, best first; ties by lowest index.

    O(n) selection by ``argpartition``, then a sort of the k winners only.
    """
    return _smallest(-scores if largest else scores, k)


def top_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest uint64 codes (:func:`~.radix.sortable`), largest first, ties by lowest
    position; code 0 marks a sample that may not be selected."""
    selectable = int(np.count_nonzero(codes))
    if not 0 <= k <= selectable:
        raise ValueError(f"k must be in [0, {selectable}] (selectable samples), got {k}")
    return _smallest(~codes, k)

"""Top-k over score vectors of any length."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int, *, largest: bool = True) -> np.ndarray:
    """Indices of the ``k`` largest (or smallest) scores, best first; ties by lowest index.

    O(n) selection by ``argpartition``, then a sort of the k winners only.
    """
    n = scores.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    keys = -scores if largest else scores
    part = np.argpartition(keys, k - 1)[:k] if k < n else np.arange(n)
    return part[np.lexsort((part, keys[part]))].astype(np.int64)

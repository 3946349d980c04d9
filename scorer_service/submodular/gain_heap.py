"""Lazy greedy's max-heap of stale gains (Minoux 1978), ordered by (gain, -index), for the compiled
optimizers (:mod:`.optimizers`): lazy greedy and the lazy probe of lazy-stochastic greedy."""

from __future__ import annotations

import numba as nb
import numpy as np

from scorer_service.submodular.functions import diversity_gain
from scorer_service.submodular.setfunction import prefetch_gain


@nb.njit(cache=True, nogil=True, inline="always")
def better(g1: float, e1: int, g2: float, e2: int) -> bool:
    return g1 > g2 or (g1 == g2 and e1 < e2)


@nb.njit(cache=True, nogil=True)
def sift_down(key: np.ndarray, ids: np.ndarray, pos: int, size: int) -> None:
    while True:
        c = 2 * pos + 1
        if c >= size:
            return
        if c + 1 < size and better(key[c + 1], ids[c + 1], key[c], ids[c]):
            c += 1
        if not better(key[c], ids[c], key[pos], ids[pos]):
            return
        key[pos], key[c] = key[c], key[pos]
        ids[pos], ids[c] = ids[c], ids[pos]
        pos = c


@nb.njit(cache=True, nogil=True, inline="always")
def pop_top(key: np.ndarray, ids: np.ndarray, size: int) -> int:
    # Drop the heap's top; returns the new size.
    size -= 1
    key[0] = key[size]
    ids[0] = ids[size]
    sift_down(key, ids, 0, size)
    return size


@nb.njit(cache=True, nogil=True, inline="always")
def prefetch_children(kind: int, data: tuple, ids: np.ndarray, size: int) -> None:
    # While the heap's top is evaluated: the next top is likely one of its children.
    for c in range(1, min(3, size)):
        prefetch_gain(kind, data, ids[c])


@nb.njit(cache=True, nogil=True)
def gain_heap(
    kind: int, data: tuple, memo: np.ndarray, m: np.ndarray, w: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    # Lazy greedy's max-heap of the first `size` elements' gains: (keys, element ids).
    key = np.empty(size)
    ids = np.arange(size)
    for e in range(size):
        key[e] = m[e] + w * diversity_gain(kind, data, memo, e)
    for pos in range(size // 2 - 1, -1, -1):
        sift_down(key, ids, pos, size)
    return key, ids

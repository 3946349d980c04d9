"""Elementwise ``exp`` and ``log`` that round every value the same way wherever it is computed.

numpy may evaluate transcendental functions with SIMD kernels whose last bit can differ from the
scalar path taken for the tail of an array, so a value's rounding could depend on its position in
the array, i.e. on how samples are split into shards. These loops call the C library once per value.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _exp(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for j in range(x.shape[0]):
        out[j] = math.exp(x[j])
    return out


@nb.njit(cache=True, nogil=True)
def _log(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    for j in range(x.shape[0]):
        v = x[j]
        out[j] = math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)
    return out


def exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of a 1-d array, as float64."""
    return _exp(np.ascontiguousarray(x, dtype=np.float64))


def log(x: np.ndarray) -> np.ndarray:
    """``log`` of a 1-d array, as float64 (0 -> -inf, negative -> NaN, without warnings)."""
    return _log(np.ascontiguousarray(x, dtype=np.float64))

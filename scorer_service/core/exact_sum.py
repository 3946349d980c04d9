"""Sums that do not depend on how the values are split or ordered: exact partial sums, rounded once.

A float's value is an integer mantissa times a power of two, so a sum of floats is an integer times
2^-1074 (plus the exponent bias). Each part (one shard's values) is accumulated exactly, by
exponent, in 64-bit integers (mantissas split in two halves, so 2^36 values never overflow), and
returned as one Python integer; parts add exactly, and :func:`to_float` rounds the total once.
Every split of the same values therefore gives the same float, bit for bit, which a plain
floating-point sum (whose rounding depends on the order of additions) does not.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_SCALE = 1075  # a float64's value is mantissa * 2^(e - 1075), e the biased exponent (1 for subnormals)
_HALF = 26
_LOW = np.uint64((1 << _HALF) - 1)
_MANT = np.uint64((1 << 52) - 1)
_IMPLICIT = np.uint64(1 << 52)


@nb.njit(cache=True, nogil=True)
def _accumulate(bits: np.ndarray) -> tuple:
    hi = np.zeros(2048, dtype=np.int64)
    lo = np.zeros(2048, dtype=np.int64)
    bad = False
    for j in range(bits.shape[0]):
        b = bits[j]
        e = np.int64((b >> np.uint64(52)) & np.uint64(0x7FF))
        if e == 0x7FF:
            bad = True
            continue
        m = b & _MANT
        if e > 0:
            m |= _IMPLICIT
        else:
            e = 1
        h = np.int64(m >> np.uint64(_HALF))
        low = np.int64(m & _LOW)
        if b >> np.uint64(63):
            hi[e] -= h
            lo[e] -= low
        else:
            hi[e] += h
            lo[e] += low
    return hi, lo, bad


def exact_sum(values: np.ndarray) -> int:
    """The exact sum of float64 ``values`` times 2^1075, as a Python integer (add parts, then
    :func:`to_float`). ValueError on NaN or infinite values."""
    x = np.ascontiguousarray(values, dtype=np.float64)
    hi, lo, bad = _accumulate(x.view(np.uint64))
    if bad:
        raise ValueError("cannot sum NaN or infinite values")
    total = 0
    for e in np.flatnonzero(hi | lo).tolist():
        total += ((int(hi[e]) << _HALF) + int(lo[e])) << e
    return total


def to_float(total: int) -> float:
    """An exact sum from :func:`exact_sum` (or several added) as the nearest float64."""
    return total / (1 << _SCALE)  # Python's integer division rounds correctly

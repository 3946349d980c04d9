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


@nb.njit(cache=True, nogil=True, inline="always")
def add(acc: np.ndarray, value: float) -> None:
    """Add ``value`` to ``acc`` (an :func:`accumulator`) exactly; for compiled loops."""
    b = np.float64(value).view(np.uint64)
    e: np.int64 | int = np.int64((b >> np.uint64(52)) & np.uint64(0x7FF))
    if e == 0x7FF:
        acc[0, 0] += 1  # NaN or infinite: counted in the slot no exponent uses
        return
    m = b & _MANT
    if e > 0:
        m |= _IMPLICIT
    else:
        e = 1
    h = np.int64(m >> np.uint64(_HALF))
    low = np.int64(m & _LOW)
    if b >> np.uint64(63):
        acc[0, e] -= h
        acc[1, e] -= low
    else:
        acc[0, e] += h
        acc[1, e] += low


@nb.njit(cache=True, nogil=True)
def _accumulate(values: np.ndarray, acc: np.ndarray) -> None:
    for j in range(values.shape[0]):
        add(acc, values[j])


def accumulator() -> np.ndarray:
    """An empty exact sum: per exponent, the high and low halves of the mantissas added so far."""
    return np.zeros((2, 2048), dtype=np.int64)


def total(acc: np.ndarray) -> int:
    """The exact sum in ``acc`` times 2^1075, as a Python integer (add parts, then :func:`to_float`).
    ValueError if a NaN or infinite value was added."""
    if acc[0, 0]:
        raise ValueError("cannot sum NaN or infinite values")
    out = 0
    for e in np.flatnonzero(acc[0] | acc[1]).tolist():
        out += ((int(acc[0, e]) << _HALF) + int(acc[1, e])) << e
    return out


def exact_sum(values: np.ndarray) -> int:
    """The exact sum of ``values`` (float64, or cast to it) times 2^1075, as a Python integer (add
    parts, then :func:`to_float`). ValueError on NaN or infinite values."""
    acc = accumulator()
    _accumulate(values if values.dtype == np.float64 else values.astype(np.float64), acc)
    return total(acc)


def to_float(total: int) -> float:
    """An exact sum from :func:`exact_sum` (or several added) as the nearest float64."""
    return total / (1 << _SCALE)  # Python's integer division rounds correctly

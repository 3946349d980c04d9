"""The per-shard passes of an exact top-k over keys spread across shards (radix select).

Keys are float64; each becomes an unsigned 64-bit integer in the same order (:func:`sortable`), so
the k-th largest key is found 16 bits at a time: every shard counts its keys per 16-bit digit
under the prefix found so far (:func:`digit_counts`), the counts are added up, and the digit that
holds the k-th key extends the prefix. Four passes give the exact key; ties at it are broken by the
lowest sample id. A NaN key marks a sample that may not be selected (code 0, never counted).
"""

from __future__ import annotations

import numba as nb
import numpy as np

DIGIT_BITS = 16
DIGITS = 1 << DIGIT_BITS
LEVELS = 64 // DIGIT_BITS
_SIGN = np.uint64(1 << 63)
_ALL = np.uint64((1 << 64) - 1)


@nb.njit(cache=True, nogil=True)
def _sortable(bits: np.ndarray, out: np.ndarray) -> None:
    for j in range(bits.shape[0]):
        b = bits[j]
        exp = (b >> np.uint64(52)) & np.uint64(0x7FF)
        if exp == np.uint64(0x7FF) and (b & np.uint64((1 << 52) - 1)) != np.uint64(0):
            out[j] = np.uint64(0)  # NaN: not selectable
        elif b == _SIGN:
            out[j] = _SIGN  # -0.0 orders as 0.0
        elif b & _SIGN:
            out[j] = ~b
        else:
            out[j] = b | _SIGN


def key_of(code: int) -> float:
    """The key whose :func:`sortable` code is ``code`` (nonzero)."""
    bits = code & ~(1 << 63) if code & (1 << 63) else ~code & ((1 << 64) - 1)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def sortable(keys: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """``keys`` as uint64 codes in the same order (larger key, larger code); NaN becomes 0.
    ``in_place``: over the float64 ``keys`` themselves (no allocation the size of a shard)."""
    x = keys if keys.dtype == np.float64 else keys.astype(np.float64)  # a strided column too
    # Outputs are allocated by numpy, which asks for huge pages: a fresh array the size of a shard
    # fills several times faster than one allocated inside the compiled loop.
    out = x.view(np.uint64) if in_place and x is keys else np.empty(x.shape[0], dtype=np.uint64)
    _sortable(x.view(np.uint64), out)
    return out


@nb.njit(cache=True, nogil=True)
def digit_counts(codes: np.ndarray, prefix: np.uint64, level: np.int64) -> np.ndarray:
    """How many codes under ``prefix`` (their top ``16 * level`` bits) have each next 16-bit digit."""
    counts = np.zeros(DIGITS, dtype=np.int64)
    low = np.uint64(64 - DIGIT_BITS * (level + 1))
    mask = np.uint64(DIGITS - 1)
    if level == 0:
        for j in range(codes.shape[0]):
            c = codes[j]
            if c != np.uint64(0):
                counts[np.int64(c >> low)] += 1
        return counts
    high = np.uint64(64 - DIGIT_BITS * level)
    for j in range(codes.shape[0]):
        c = codes[j]
        if c != np.uint64(0) and (c >> high) == prefix:
            counts[np.int64((c >> low) & mask)] += 1
    return counts


@nb.njit(cache=True, nogil=True)
def _count_above(codes: np.ndarray, threshold: np.uint64) -> int:
    total = 0
    for j in range(codes.shape[0]):
        total += codes[j] > threshold
    return total


@nb.njit(cache=True, nogil=True)
def _above_cut(codes: np.ndarray, threshold: np.uint64, ties: np.int64, keep: np.ndarray) -> None:
    # Without branches on the keys (half of them may be kept, in no predictable pattern).
    count = 0
    for j in range(codes.shape[0]):
        c = codes[j]
        tie = (c == threshold) & (ties > 0)
        keep[count] = j
        count += (c > threshold) | tie
        ties -= tie


def above_cut(codes: np.ndarray, threshold: np.uint64, ties: np.int64) -> np.ndarray:
    """Positions of the codes above ``threshold``, and of the first ``ties`` equal to it (lowest
    positions first), in increasing order."""
    kept = int(_count_above(codes, threshold)) + min(int(ties), int(count_equal(codes, threshold)))
    keep = np.empty(kept + 1, dtype=np.int64)  # one spare: the loop writes every position once
    _above_cut(codes, threshold, ties, keep)
    return keep[:kept]


@nb.njit(cache=True, nogil=True)
def count_equal(codes: np.ndarray, value: np.uint64) -> int:
    total = 0
    for j in range(codes.shape[0]):
        if codes[j] == value:
            total += 1
    return total

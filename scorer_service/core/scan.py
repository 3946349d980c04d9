"""The per-sample checks of an ingest, compiled: one pass over the batch's values, one over its
samples' records.

The record pass reads each sample's record once (a cache line, see :mod:`.state`): its ``stamp``
finds duplicate ids in O(batch) and its ``last_seen_step`` finds stale observations. Only ``stamp``
is written: it holds the number of the last scan that saw the sample, so a later scan (a larger
number) never mistakes an earlier one's marks for duplicates and a rejected batch leaves nothing
behind that matters. The pass also brings the batch's records into the cache for the update that
follows (:mod:`.updates`).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from scorer_service.core.kernel_types import FLOATS, INT, RECORDS, column
from scorer_service.core.prefetch import AHEAD, prefetch
from scorer_service.core.wire.validation import (
    BAD_LR,
    DUPLICATE,
    HIGH,
    LOW,
    NEGATIVE_LOSS,
    NEGATIVE_STEP,
    NONFINITE_LOSS,
    STALE,
)


@nb.njit(cache=True, nogil=True, inline="always")
def _note_value_problem(out: np.ndarray, i: int, x: float, rate: float, step: int) -> None:
    if out[NONFINITE_LOSS] < 0 and not math.isfinite(x):
        out[NONFINITE_LOSS] = i
    if out[NEGATIVE_LOSS] < 0 and x < 0:
        out[NEGATIVE_LOSS] = i
    if out[BAD_LR] < 0 and not (math.isfinite(rate) and rate >= 0):
        out[BAD_LR] = i
    if out[NEGATIVE_STEP] < 0 and step < 0:
        out[NEGATIVE_STEP] = i


_SIGNATURES = [
    INT[::1](RECORDS, column(INT), column(loss), column(lr), column(INT), INT)
    for loss in FLOATS
    for lr in FLOATS
]


@nb.njit(_SIGNATURES, cache=True, nogil=True)
def scan_batch(
    records: np.ndarray,
    ids: np.ndarray,
    loss: np.ndarray,
    lr: np.ndarray,
    step: np.ndarray,
    token: int,
) -> np.ndarray:
    """Smallest and largest id, then the first position of each problem (-1: none), indexed as
    :data:`~.byproducts.LOW` ... :data:`~.byproducts.STALE`. ``token``: a number larger than any
    earlier scan's. Records are looked up only when every id is in range."""
    out = np.full(8, -1, dtype=np.int64)
    m = ids.shape[0]
    lo, hi = (ids[0], ids[0]) if m else (0, 0)
    for i in range(m):
        lo, hi = min(lo, ids[i]), max(hi, ids[i])
        x, rate = loss[i], lr[i]
        if not (math.isfinite(x) and x >= 0 and math.isfinite(rate) and rate >= 0 and step[i] >= 0):
            _note_value_problem(out, i, x, rate, step[i])
    out[LOW], out[HIGH] = lo, hi
    if lo < 0 or hi >= records.shape[0]:
        return out
    stale = False
    for i in range(m):
        if i + AHEAD < m:
            prefetch(records, ids[i + AHEAD])
        r = records[ids[i]]
        if r.stamp == token and out[DUPLICATE] < 0:
            out[DUPLICATE] = i
        r.stamp = token
        stale |= step[i] < r.last_seen_step
    if stale:
        for i in range(m):
            if step[i] < records[ids[i]].last_seen_step:
                out[STALE] = i
                break
    return out

"""A byproduct batch split over the shards of a store, each part to the shard holding its ids.

The whole batch is checked first, with the messages a store would give (columns, value ranges,
duplicate ids), so a malformed batch is refused before any shard sees a part of it. Every part
carries the batch's writer and sequence number (each shard applies it once) and the batch's whole
learning-rate table, also a part without samples: every shard logs every step's rate, and a
shard's "sum of learning rates since a sample was last seen" is the run's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer_service.core.errors import InvalidBatch
from scorer_service.core.wire.batch import BATCH_FIELDS, TABLE_COLUMNS, Ingested
from scorer_service.core.wire.validation import (
    BAD_LR,
    DUPLICATE,
    HIGH,
    LOW,
    NEGATIVE_LOSS,
    NEGATIVE_STEP,
    NONFINITE_LOSS,
    ByproductBatch,
    value_problem,
)


def check(data: dict[str, Any], n: int, widths: dict[str, int], *, correct: bool) -> ByproductBatch:
    """``data`` as a batch for a store of ``n`` samples; :class:`InvalidBatch` with the store's message
    for anything a store would refuse without looking at its state."""
    batch = ByproductBatch.from_mapping(data, widths, correct=correct)
    ids, loss, lr, step = batch.sample_id, batch.loss, batch.lr, batch.step
    scan = np.full(8, -1, dtype=np.int64)
    if len(ids):
        scan[LOW], scan[HIGH] = ids.min(), ids.max()
    else:
        scan[LOW] = scan[HIGH] = 0
    if scan[LOW] >= 0 and scan[HIGH] < n and np.unique(ids).size != ids.size:
        scan[DUPLICATE] = 0
    for code, bad in (
        (NONFINITE_LOSS, ~np.isfinite(loss)),
        (NEGATIVE_LOSS, loss < 0),
        (BAD_LR, ~(np.isfinite(lr) & (lr >= 0))),
        (NEGATIVE_STEP, step < 0),
    ):
        if bad.any():
            scan[code] = int(np.argmax(bad))
    problem = value_problem(scan, n)
    if problem is not None:
        raise InvalidBatch(problem)
    return batch


def split(data: dict[str, Any], batch: ByproductBatch, bounds: np.ndarray) -> list[dict[str, Any]]:
    """``data`` (checked as ``batch``) as one part per shard of ``bounds``, with the whole batch's
    learning-rate table in each."""
    ids = batch.sample_id
    owner = np.searchsorted(bounds, ids, side="right") - 1
    order = np.argsort(owner, kind="stable")
    cuts = np.searchsorted(owner[order], np.arange(len(bounds)))
    steps, first = np.unique(batch.step, return_index=True)
    table = {"table_step": steps, "table_lr": batch.lr[first].astype(np.float64)}
    columns = {
        k: v
        for k, v in data.items()
        if isinstance(v, np.ndarray) and k not in TABLE_COLUMNS and k != "sample_id"
    }
    fields = {k: data[k] for k in BATCH_FIELDS if k in data}
    parts = []
    for s in range(len(bounds) - 1):
        rows = order[cuts[s] : cuts[s + 1]]
        part = {"sample_id": ids[rows], **{k: v[rows] for k, v in columns.items()}}
        parts.append(part | fields | table)
    return parts


def acknowledged(parts: list[Ingested]) -> Ingested:
    """One batch's acknowledgement from its parts': samples applied, whether it was a retried send, and
    the lag of the shard furthest behind."""
    return Ingested(
        applied=sum(p.applied for p in parts),
        duplicate=all(p.duplicate for p in parts),
        lag_s=max(p.lag_s for p in parts),
    )

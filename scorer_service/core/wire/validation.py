"""One batch of per-sample training byproducts, as a trainer sends it to the store, checked against
the wire schema (:mod:`scorer_service.core.wire.batch`: its columns and per-batch fields)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scorer_service.core.errors import InvalidBatch
from scorer_service.core.wire.batch import (
    BATCH_FIELDS,
    COLUMNS,
    OPTIONAL_COLUMNS,
    RECORD_FIELDS,
    REQUIRED_COLUMNS,
    TABLE_COLUMNS,
)

# Required unless the store was told that its trainers send no correctness (regression, LM losses).
OPTIONAL_CORE = frozenset({"correct"})


@dataclass
class ByproductBatch:
    """A batch of well-formed columns; build it with :meth:`from_mapping`. Its per-sample values are
    checked against the store in one compiled pass (:mod:`.scan`, :func:`value_problem`)."""

    sample_id: np.ndarray
    loss: np.ndarray
    correct: np.ndarray | None
    step: np.ndarray
    lr: np.ndarray
    round: int
    rank: int
    writer: str
    seq: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    table_step: np.ndarray | None = None
    table_lr: np.ndarray | None = None
    sent: float = 0.0
    queued: int = 0

    def __len__(self) -> int:
        return int(self.sample_id.shape[0])

    def rows(self, keep: np.ndarray) -> ByproductBatch:
        """The batch with only the samples where ``keep`` is true (the batch fields unchanged)."""
        return replace(
            self,
            sample_id=self.sample_id[keep],
            loss=self.loss[keep],
            correct=None if self.correct is None else self.correct[keep],
            step=self.step[keep],
            lr=self.lr[keep],
            extra={name: values[keep] for name, values in self.extra.items()},
        )

    def newest_step(self) -> int:
        """The newest optimizer step the whole batch covers (a shard's part: its table's); -1 if none."""
        steps = [a for a in (self.step, self.table_step) if a is not None and len(a)]
        return max((int(a.max()) for a in steps), default=-1)

    @classmethod
    def from_mapping(
        cls,
        data: dict[str, Any],
        widths: dict[str, int] | None = None,
        *,
        correct: bool = True,
    ) -> ByproductBatch:
        """Check ``data``'s columns (names, types, shapes, lengths) and batch fields; raise
        :class:`InvalidBatch` naming the problem.

        ``correct=False``: the run's trainers send no correctness, so the column may be absent.
        """
        if not isinstance(data, dict):
            raise InvalidBatch(f"a batch must be a dict of columns, got {type(data).__name__}")
        needed = [c for c in REQUIRED_COLUMNS if correct or c not in OPTIONAL_CORE]
        missing = [c for c in (*needed, *RECORD_FIELDS) if c not in data]
        if missing:
            raise InvalidBatch(f"batch is missing {', '.join(missing)}")
        known = {*COLUMNS, *TABLE_COLUMNS, *BATCH_FIELDS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidBatch(f"batch has unknown columns {', '.join(unknown)}")

        widths = widths or {}
        cols: dict[str, np.ndarray] = {}
        for name, spec in COLUMNS.items():
            kinds, ndim, matrix = spec.kinds, spec.ndim, spec.matrix
            if name not in data:
                continue
            arr = data[name]
            if not isinstance(arr, np.ndarray):
                raise InvalidBatch(f"column {name} must be a numpy array, got {type(arr).__name__}")
            if arr.ndim != ndim:
                raise InvalidBatch(f"column {name} must be {ndim}-dimensional, got shape {arr.shape}")
            if arr.dtype.kind not in kinds:
                raise InvalidBatch(f"column {name} has dtype {arr.dtype}, expected kind {'/'.join(kinds)}")
            if matrix is not None:
                if not widths.get(matrix):
                    raise InvalidBatch(f"column {name} sent, but this store does not keep {matrix}")
                if arr.shape[1] != widths[matrix]:
                    raise InvalidBatch(f"column {name} has width {arr.shape[1]}, expected {widths[matrix]}")
            if name in OPTIONAL_COLUMNS and not np.all(np.isfinite(arr)):
                raise InvalidBatch(f"column {name} has NaN or infinite values")
            if arr.dtype.kind in "iu" and name in OPTIONAL_COLUMNS and np.any(arr < 0):
                raise InvalidBatch(f"column {name} has negative values")
            cols[name] = arr
        lengths = {name: len(a) for name, a in cols.items()}
        if len(set(lengths.values())) > 1:
            raise InvalidBatch(f"column lengths differ: {lengths}")

        table = _table(data)
        sent, queued = data.get("sent", 0.0), data.get("queued", 0)
        if isinstance(sent, bool) or not isinstance(sent, int | float) or not sent >= 0:
            raise InvalidBatch(f"sent must be a time in seconds >= 0, got {sent!r}")
        if isinstance(queued, bool) or not isinstance(queued, int | np.integer) or queued < 0:
            raise InvalidBatch(f"queued must be a non-negative integer, got {queued!r}")
        for key in ("round", "rank", "seq"):
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise InvalidBatch(f"{key} must be a non-negative integer, got {v!r}")
        if not isinstance(data["writer"], str) or not data["writer"]:
            raise InvalidBatch(f"writer must be a non-empty string, got {data['writer']!r}")

        return cls(
            sample_id=cols["sample_id"].astype(np.int64, copy=False),
            loss=_compiled_float(cols["loss"]),
            correct=cols.get("correct"),
            step=cols["step"].astype(np.int64, copy=False),
            lr=_compiled_float(cols["lr"]),
            round=int(data["round"]),
            rank=int(data["rank"]),
            writer=data["writer"],
            seq=int(data["seq"]),
            extra={k: v for k, v in cols.items() if k in OPTIONAL_COLUMNS},
            table_step=table[0],
            table_lr=table[1],
            sent=float(sent),
            queued=int(queued),
        )


def _table(data: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The batch's learning-rate table, checked (both columns or neither, 1-d, equally long)."""
    present = [c for c in TABLE_COLUMNS if c in data]
    if not present:
        return None, None
    if len(present) == 1:
        raise InvalidBatch(f"batch has {present[0]} without {set(TABLE_COLUMNS).difference(present).pop()}")
    steps, lrs = data["table_step"], data["table_lr"]
    for name, arr, kind in (("table_step", steps, "i"), ("table_lr", lrs, "f")):
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind != kind:
            raise InvalidBatch(f"{name} must be a 1-d numpy array of kind {kind}")
    if len(steps) != len(lrs):
        raise InvalidBatch(f"table_step and table_lr differ in length: {len(steps)} and {len(lrs)}")
    return steps.astype(np.int64, copy=False), _compiled_float(lrs)


def _compiled_float(a: np.ndarray) -> np.ndarray:
    """float32 and float64 as sent (the compiled checks and updates read both); other widths as float64."""
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


# Positions in the result of :func:`scorer_service.core.scan.scan_batch`.
LOW, HIGH, DUPLICATE, NONFINITE_LOSS, NEGATIVE_LOSS, BAD_LR, NEGATIVE_STEP, STALE = range(8)


def value_problem(scan: np.ndarray, n: int, first: int = 0) -> str | None:
    """What is wrong with a batch's values, from the scan of it (first problem in a fixed order); the
    store (shard) holds the ids ``first .. first + n - 1``, which the scan saw as ``0 .. n - 1``."""
    lo, hi = int(scan[LOW]), int(scan[HIGH])
    if lo < 0 or hi >= n:
        return f"sample_id {(lo if lo < 0 else hi) + first} is out of range [{first}, {first + n})"
    if scan[DUPLICATE] >= 0:
        return "sample_id has duplicates: a sample may appear once per batch"
    if scan[NONFINITE_LOSS] >= 0:
        return "loss has NaN or infinite values"
    if scan[NEGATIVE_LOSS] >= 0:
        return "loss has negative values"
    if scan[BAD_LR] >= 0:
        return "lr must be finite and >= 0"
    if scan[NEGATIVE_STEP] >= 0:
        return "step has negative values"
    return None

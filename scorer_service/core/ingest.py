"""Ingest: validate a byproduct batch whole, drop retried sends, apply it exactly once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer_service.core.dedup import AppliedSequences, AppliedState
from scorer_service.core.errors import InvalidBatch
from scorer_service.core.hardness import metric_code
from scorer_service.core.lr_log import LearningRateLog
from scorer_service.core.scan import scan_batch
from scorer_service.core.state import SampleState
from scorer_service.core.updates import apply_batch
from scorer_service.core.wire.validation import STALE, ByproductBatch, value_problem


@dataclass
class StateImage:
    """Everything of an :class:`Ingestor` that a snapshot holds."""

    columns: dict[str, np.ndarray]  # 1-d columns and 2-d matrices by name
    lr: np.ndarray
    # Prefix sums of ``lr`` as computed incrementally (recomputing them would round differently).
    cum: np.ndarray
    applied: AppliedState
    counters: dict[str, Any]
    progress: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestPlan:
    """A batch that passed every check, and the learning rates it adds to the log."""

    batch: ByproductBatch
    new_lrs: np.ndarray
    superseded: int = 0  # observations dropped: the sample was already observed at a later step
    newest: int = -1  # the newest optimizer step the batch covers


class Ingestor:
    """The per-sample state of a run (or of the ids ``first .. first + n - 1``, one shard of it), the
    learning-rate log and the exactly-once bookkeeping.

    :meth:`plan` checks a batch against everything (columns, ranges, duplicate ids, steps older
    than a sample's last observation, learning rates that disagree with the log) without
    changing anything (a scan's duplicate marks aside, see :mod:`.scan`); :meth:`apply` then
    cannot fail half way.
    """

    def __init__(
        self,
        n: int,
        *,
        metric: str,
        gamma: float,
        widths: dict[str, int],
        log_sigma_init: float = 0.0,
        correct: bool = True,
        first: int = 0,
        drop_superseded: bool = False,
    ) -> None:
        self.n, self.metric, self.gamma, self.correct, self.first = n, metric, gamma, correct, first
        self._metric = metric_code(metric)
        self.widths = widths
        self.log_sigma_init = log_sigma_init
        # Whether an observation older than a sample's newest is dropped (True) or refused (False).
        self.drop_superseded = drop_superseded
        # Number of the next scan (see scan.py); never reused, so it outlives reset() and restore().
        self._scans = 1
        self.reset()

    def reset(self) -> None:
        """The initial state: nothing observed."""
        self.state = SampleState(
            self.n,
            output_width=self.widths.get("outputs", 0),
            embedding_dim=self.widths.get("embedding", 0),
            log_sigma_init=self.log_sigma_init,
        )
        self.lr_log = LearningRateLog()
        self.applied = AppliedSequences()
        # Per rank, the newest optimizer step of its batches applied here (a writer's sends are
        # applied in order): how far behind the trainers the scores are (bounded staleness).
        self.progress: dict[int, int] = {}
        self.counters = {"ingested": 0, "batches": 0, "rejected": 0, "duplicates": 0, "superseded": 0}
        self.ingest_seconds = 0.0

    def plan(self, data: dict[str, Any]) -> IngestPlan | None:
        """Validate ``data``; None for a batch already applied (a retried send), which is counted."""
        try:
            plan = self._check(data)
        except InvalidBatch:
            self.counters["rejected"] += 1
            raise
        if plan is None:
            self.counters["duplicates"] += 1
        return plan

    def _check(self, data: dict[str, Any]) -> IngestPlan | None:
        batch = ByproductBatch.from_mapping(data, self.widths, correct=self.correct)
        if self.first:
            batch.sample_id = batch.sample_id - self.first  # positions in this shard's state
        records = self.state.records
        scan = scan_batch(records, batch.sample_id, batch.loss, batch.lr, batch.step, self._scans)
        self._scans += 1
        problem = value_problem(scan, self.n, self.first)
        if problem is not None:
            raise InvalidBatch(problem)
        if (batch.writer, batch.seq) in self.applied:
            return None
        steps, lrs, dropped, newest = batch.step, batch.lr, 0, batch.newest_step()
        if scan[STALE] >= 0:
            if not self.drop_superseded:
                i = int(scan[STALE])
                sample = int(batch.sample_id[i])
                raise InvalidBatch(
                    f"sample {sample + self.first} observed at step {int(batch.step[i])}, but it was "
                    f"already observed at the later step {int(records[sample]['last_seen_step'])}"
                )
            # Ranks that do not wait for each other: a newer observation of a sample came first.
            keep = batch.step >= records["last_seen_step"][batch.sample_id]
            batch, dropped = batch.rows(keep), int(len(keep) - keep.sum())
        if batch.table_step is not None:  # a part of a batch split over shards: the whole batch's rates
            assert batch.table_lr is not None  # sent together with table_step
            steps = np.concatenate([batch.table_step, steps])
            lrs = np.concatenate([batch.table_lr.astype(np.float64), lrs.astype(np.float64)])
        try:
            new_lrs = self.lr_log.plan(steps, lrs)
        except ValueError as e:
            raise InvalidBatch(str(e)) from None
        return IngestPlan(batch, new_lrs, dropped, newest)

    def apply(self, plan: IngestPlan, started: float) -> None:
        """Apply a plan from :meth:`plan`; ``started`` is its ``perf_counter`` time (ingest rate)."""
        batch = plan.batch
        apply_batch(self.state, self.lr_log, batch, plan.new_lrs, self._metric, self.gamma)
        self.applied.add(batch.writer, batch.seq)
        self.progress[batch.rank] = max(plan.newest, self.progress.get(batch.rank, -1))
        self.counters["ingested"] += len(batch)
        self.counters["superseded"] += plan.superseded
        self.counters["batches"] += 1
        self.ingest_seconds += time.perf_counter() - started

    def image(self) -> StateImage:
        """A copy of the state as a snapshot holds it; later changes do not reach it."""
        s = self.state
        counters = {**self.counters, "ingest_seconds": self.ingest_seconds}
        columns = {name: values.copy() for name, values in {**s.columns, **s.matrices}.items()}
        return StateImage(
            columns,
            self.lr_log.lr.copy(),
            self.lr_log.cum.copy(),
            self.applied.state(),
            counters,
            dict(self.progress),
        )

    def restore(self, image: StateImage) -> None:
        """Set the state to a snapshot's."""
        for name, values in image.columns.items():
            # In place: the hot columns are views into the per-sample records.
            target = self.state.matrices if values.ndim == 2 else self.state.columns
            target[name][...] = values
        self.lr_log = LearningRateLog()
        self.lr_log.restore(image.lr, image.cum)
        self.applied = AppliedSequences(image.applied)
        self.progress = dict(image.progress)
        counters = dict(image.counters)
        self.ingest_seconds = float(counters.pop("ingest_seconds", 0.0))
        self.counters = {"superseded": 0} | counters

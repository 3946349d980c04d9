"""The hardness store of one run: a small facade over its components.

:class:`~scorer_service.core.ingest.Ingestor` (validation, dedup, score updates),
:class:`~scorer_service.selection.planner.RoundPlanner` (selection, shards),
:class:`~scorer_service.durability.journal.Journal` (log, snapshots, replay) and
:mod:`~scorer_service.core.queries`. Plain Python; ``scorer_service.ray.actor`` wraps it unchanged.

One thread at a time changes the store (the actor's default concurrency group); queries may run on
other threads. Every change to what queries read is made under the write side of a readers-writer
lock, and every query copies what it answers from under the read side, so an answer always comes
from one consistent state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from scorer_service.config import StoreConfig
from scorer_service.core import label_noise, queries
from scorer_service.core.errors import InvalidBatch, InvalidQuery, NotFound
from scorer_service.core.locking import ReadWriteLock
from scorer_service.core.rounds import check_metrics
from scorer_service.core.state import SampleState
from scorer_service.submodular import MapFn


class HardnessStore:
    """Per-sample scores of one run and its round-by-round subset selection; with ``config.snapshot_dir``
    every acknowledged change is durable. ``block_map`` solves diversity blocks (default: a thread pool)."""

    def __init__(self, config: StoreConfig, *, block_map: MapFn | None = None) -> None:
        self.config, self._block_map = config, block_map
        self.ingestor, self.planner = config.ingestor(), config.planner(block_map)
        self.journal = config.journal()
        self._lock = ReadWriteLock()
        seq = self.journal.newest(config.to_dict())
        if seq is not None:
            self._load(seq)
            self.journal.replay(seq, self)
        if self.journal.durable:
            # The initial state is snapshot 1, so a run can be rewound to before its first round; a
            # restored state is written at once, so no record is ever replayed twice.
            self.snapshot(completed_round=-1 if seq is None else None)

    def ingest(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply one byproduct batch; a rejected batch changes nothing.

        A batch whose ``(writer, seq)`` was already applied is acknowledged and ignored (retried sends).
        """
        t0 = time.perf_counter()
        try:
            plan = self.ingestor.plan(data)
        except InvalidBatch:
            self.journal.log({"kind": "rejected"})
            raise
        if plan is None:
            self.journal.commit(self.journal.log({"kind": "duplicates"}, ack=True))
            return {"applied": 0, "duplicate": True}
        b = plan.batch
        header = {"kind": "ingest", "round": b.round, "rank": b.rank, "writer": b.writer, "seq": b.seq}
        header["t"] = self.ingestor.ingest_seconds
        columns = {c: v for c, v in data.items() if isinstance(v, np.ndarray)}
        ticket = self.journal.log(header, columns, ack=True)
        with self._lock.write():
            self.ingestor.apply(plan, t0)
            self.planner.count_ingested(b.round, len(b))
        if self.journal.due():
            self.snapshot(wait=False)
        self.journal.commit(ticket)
        return {"applied": len(b), "duplicate": False}

    def parameters(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Instance data parameters (log sigma and its momentum) of ``ids``, for a rank's shard."""
        return self._read(lambda: queries.parameters(self.state, ids))

    def subset(self, round_: int, rank: int, world_size: int) -> np.ndarray:
        """Rank ``rank``'s shard of round ``round_``'s subset, selected once on the round's first request
        (so every rank's byproducts of the previous round must be in before any rank asks)."""
        if not 0 <= round_ < self.config.epochs:
            raise InvalidQuery(f"round must be in [0, {self.config.epochs}), got {round_}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise InvalidQuery(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        change = self.planner.change(round_, world_size)
        if change is not None:
            self.journal.log({"kind": change, "round": round_, "world": world_size})
        # Selecting only reads: queries go on meanwhile, and wait only while it is adopted.
        chosen = self.planner.select(self.state, round_, world_size) if change == "select" else None
        with self._lock.write():
            return self.planner.shard(self.state, round_, rank, world_size, chosen)

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        """Attach the trainer's end-of-round metrics (test accuracy, train loss, ...) to a round."""
        if round_ not in self.planner.rounds:
            raise NotFound(f"round {round_} was never selected")
        check_metrics(metrics)
        ticket = self.journal.log({"kind": "record", "round": round_, "metrics": metrics}, ack=True)
        noise = label_noise.noise_probability(self.state.loss_mean, self.state.seen)  # refit per round
        with self._lock.write():
            self.planner.rounds[round_].metrics.update({k: float(v) for k, v in metrics.items()})
            self.state.noise[:] = noise
        self.journal.commit(ticket, round_end=True)
        if self.journal.durable:  # in the background, unless a restart could not find it otherwise
            self.snapshot(completed_round=round_, wait=self.journal.replaying or not self.journal.logged)

    def snapshot(self, completed_round: int | None = None, wait: bool = True) -> int:
        """Write a snapshot (``wait``: complete on return, else in the background) and log later changes
        to a new log; returns its number. Only this thread changes the store: one state, no lock."""
        image, rounds = self.ingestor.image(), self.planner.copy_rounds()
        return self.journal.snapshot(image, rounds, self.config.to_dict(), completed_round, wait)

    def _load(self, seq: int) -> None:
        image, rounds = self.journal.load(seq)
        self.ingestor.restore(image)
        self.planner.rounds = rounds

    def rewind(self, completed_round: int) -> bool:
        """Return to the end of ``completed_round`` (-1: before the first round): forget what a lost
        training attempt ingested and selected after it. A store not ahead is left as it is. False,
        changing nothing: ahead but no snapshots to return to; raises when that round's is gone."""
        if not any(r > completed_round for r in self.planner.rounds):
            return True
        if completed_round >= 0 and not self.journal.durable:
            return False
        if completed_round < 0:  # back to the beginning: the initial state, no snapshot needed
            with self._lock.write():
                self.ingestor.reset()
                self.planner = self.config.planner(self._block_map)
        else:
            self.journal.settle()  # the round's snapshot may still be being written
            seq = self.journal.round_end_seq(completed_round)
            with self._lock.write():
                self._load(seq)
        self.journal.forget_after(completed_round)
        if self.journal.durable:  # complete before the rewind is acknowledged: a restart keeps it
            self.snapshot(completed_round=-1 if completed_round < 0 else None)
        return True

    # ---- queries: each copies what it answers from under the read lock, then computes ------

    @property
    def state(self) -> SampleState:
        return self.ingestor.state

    def _read(self, gather: Callable[[], Any]) -> Any:
        with self._lock.read():
            return gather()

    def info(self) -> dict[str, Any]:
        return self._read(lambda: queries.info(self.config.to_dict(), self.ingestor, self.planner.rounds))

    def samples(self, ids: np.ndarray | list[int]) -> list[dict[str, Any]]:
        ids = queries.check_ids(ids, self.config.n)
        return queries.samples(ids, self._read(lambda: self.state.rows(ids)))

    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[dict[str, Any]]:
        return queries.top(self._read(lambda: queries.metric_values(self.state, metric)), metric, k, order)

    def histogram(self, metric: str = "dih", bins: int = 20) -> dict[str, Any]:
        return queries.histogram(self._read(lambda: queries.metric_values(self.state, metric)), metric, bins)

    def round_summaries(self) -> list[dict[str, Any]]:
        return self._read(lambda: queries.round_summaries(self.planner.rounds))

    def round_subset(self, round_: int, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        return self._read(lambda: queries.round_subset(self.planner.rounds, round_, offset, limit))

    def columns(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Whole state columns (default: all), copied from one state: a consistent score table."""
        return self._read(lambda: queries.columns(self.state, names))

    def column(self, name: str) -> np.ndarray:
        return self.columns([name])[name]

    def label_issues(self, threshold: float = 0.5, limit: int = 100) -> list[dict[str, Any]]:
        return queries.label_issues(self.columns(list(queries.LABEL_ISSUE_COLUMNS)), threshold, limit)

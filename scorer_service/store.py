"""The hardness store of one run: a small facade over its components.

:class:`~scorer_service.core.ingest.Ingestor` (validation, dedup, score updates),
:class:`~scorer_service.selection.planner.RoundPlanner` (selection, shards),
:class:`~scorer_service.durability.journal.Journal` (log, snapshots, replay) and
:mod:`~scorer_service.core.queries`. Plain Python; ``scorer_service.ray.actor`` wraps it unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from scorer_service.config import StoreConfig
from scorer_service.core import label_noise, queries
from scorer_service.core.dedup import AppliedSequences
from scorer_service.core.errors import InvalidQuery, NotFound
from scorer_service.core.lr_log import LearningRateLog
from scorer_service.core.rounds import RoundRecord
from scorer_service.core.state import SampleState
from scorer_service.submodular import MapFn


class HardnessStore:
    """Per-sample scores of one run and its round-by-round subset selection.

    With ``config.snapshot_dir`` every acknowledged change is durable (see :mod:`.durability.journal`).
    ``block_map`` solves diversity blocks (default: a thread pool).
    """

    def __init__(self, config: StoreConfig, *, block_map: MapFn | None = None) -> None:
        self.config, self._block_map = config, block_map
        self.ingestor, self.planner = config.ingestor(), config.planner(block_map)
        self.journal = config.journal()
        seq = self.journal.newest(config.to_dict())
        if seq is not None:
            self._load(seq)
            self.journal.replay(seq, self)
        elif self.journal.durable:
            # The initial state is snapshot 1, so a run can be rewound to before its first round.
            self.snapshot(completed_round=-1)

    def ingest(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply one byproduct batch; a rejected batch changes nothing.

        A batch whose ``(writer, seq)`` was already applied is acknowledged and ignored (retried sends).
        """
        t0 = time.perf_counter()
        plan = self.ingestor.plan(data)
        if plan is None:
            return {"applied": 0, "duplicate": True}
        b = plan.batch
        header = {"kind": "ingest", "round": b.round, "rank": b.rank, "writer": b.writer, "seq": b.seq}
        self.journal.log(header, {c: v for c, v in data.items() if isinstance(v, np.ndarray)})
        self.ingestor.apply(plan, t0)
        self.planner.count_ingested(b.round, len(b))
        if self.journal.due():
            self.snapshot()
        return {"applied": len(b), "duplicate": False}

    def parameters(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Instance data parameters (log sigma and its momentum) of ``ids``, for a rank's shard."""
        return queries.parameters(self.ingestor.state, ids)

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
        return self.planner.shard(self.ingestor.state, round_, rank, world_size)

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        """Attach the trainer's end-of-round metrics (test accuracy, train loss, ...) to a round."""
        if round_ not in self.planner.rounds:
            raise NotFound(f"round {round_} was never selected")
        bad = {k: v for k, v in metrics.items() if not isinstance(v, int | float) or isinstance(v, bool)}
        if bad:
            raise InvalidQuery(f"metrics must be numbers, got {bad}")
        self.journal.log({"kind": "record", "round": round_, "metrics": metrics})
        self.planner.rounds[round_].metrics.update({k: float(v) for k, v in metrics.items()})
        label_noise.refit(self.ingestor.state)
        if self.journal.durable and not self.journal.replaying:
            self.snapshot(completed_round=round_)

    def snapshot(self, completed_round: int | None = None) -> int:
        """Write a snapshot now (atomically) and start a new log after it; returns its number."""
        return self.journal.write(
            self.ingestor.image(), self.planner.rounds, self.config.to_dict(), completed_round
        )

    def _load(self, seq: int) -> None:
        image, self.planner.rounds = self.journal.load(seq)
        self.ingestor.restore(image)

    def rewind(self, completed_round: int) -> bool:
        """Return to the state at the end of ``completed_round`` (-1: before the first round), so the
        store forgets what a lost training attempt ingested and selected after it. A store that is not
        ahead is left as it is. Returns False, changing nothing, when the store is ahead but keeps no
        snapshots to return to; raises when that round's snapshot is gone."""
        if not any(r > completed_round for r in self.planner.rounds):
            return True
        if completed_round < 0:
            # Back to the beginning needs no snapshot: it is the initial state.
            self.ingestor.reset()
            self.planner = self.config.planner(self._block_map)
            if self.journal.durable:
                self.journal.round_end = {}
                self.snapshot(completed_round=-1)
            return True
        if not self.journal.durable:
            return False
        self._load(self.journal.round_end_seq(completed_round))
        self.journal.forget_after(completed_round)
        self.snapshot()
        return True

    # ---- queries ------------------------------------------------------------------------

    @property
    def state(self) -> SampleState:
        return self.ingestor.state

    @property
    def lr_log(self) -> LearningRateLog:
        return self.ingestor.lr_log

    @property
    def counters(self) -> dict[str, int]:
        return self.ingestor.counters

    @property
    def applied(self) -> AppliedSequences:
        return self.ingestor.applied

    @property
    def rounds(self) -> dict[int, RoundRecord]:
        return self.planner.rounds

    def info(self) -> dict[str, Any]:
        return queries.info(self.config.to_dict(), self.ingestor, self.planner.rounds)

    def samples(self, ids: np.ndarray | list[int]) -> list[dict[str, Any]]:
        return queries.samples(self.ingestor.state, ids)

    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[dict[str, Any]]:
        return queries.top(self.ingestor.state, metric, k, order)

    def histogram(self, metric: str = "dih", bins: int = 20) -> dict[str, Any]:
        return queries.histogram(self.ingestor.state, metric, bins)

    def round_summaries(self) -> list[dict[str, Any]]:
        return queries.round_summaries(self.planner.rounds)

    def round_subset(self, round_: int, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        return queries.round_subset(self.planner.rounds, round_, offset, limit)

    def column(self, name: str) -> np.ndarray:
        return queries.column(self.ingestor.state, name)

    def label_issues(self, threshold: float = 0.5, limit: int = 100) -> list[dict[str, Any]]:
        return queries.label_issues(self.ingestor.state, threshold, limit)

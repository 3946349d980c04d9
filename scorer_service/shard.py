"""One shard of a run's store: the samples of one id range, with its own snapshots and write-ahead log.

A store of S shards splits the ids ``0 .. n-1`` into S contiguous ranges
(:func:`~scorer_service.config.components.bounds`); a store of one shard is the whole store. A shard keeps
its samples' state (:class:`~scorer_service.core.ingest.Ingestor`), every round's record with its part of
the selection, the open selection sessions (:mod:`scorer_service.selection.session`) and its
:class:`~scorer_service.durability.journal.Journal`. Plain Python; ``scorer_service.ray`` runs it as an actor.

Changes are applied one at a time, under the change lock, in the order they are logged. Ingests may
arrive on several threads (the actor's "ingest" group): each writer's batches apply in its own order
(:mod:`scorer_service.core.turns`), and each call waits for its fsync outside the lock, so batches logged
meanwhile share it (group commit). Queries copy their answers under a readers-writer lock's read side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from scorer_service.config import StoreConfig, components
from scorer_service.core import label_noise, queries
from scorer_service.core.errors import InvalidBatch, NotFound
from scorer_service.core.load import IngestLoad
from scorer_service.core.locking import ReadWriteLock, changes
from scorer_service.core.rounds import RoundRecord, check_metrics
from scorer_service.core.scratch import Scratch
from scorer_service.core.state import SampleState
from scorer_service.core.turns import WriterTurns, in_flight, writer_key
from scorer_service.core.wire.answers import LabelIssue, RoundSummary
from scorer_service.core.wire.batch import TABLE_COLUMNS, Ingested
from scorer_service.core.wire.interface import read_only
from scorer_service.durability.entries import (
    AdoptEntry,
    DuplicatesEntry,
    Entry,
    IngestEntry,
    RecordEntry,
    RejectedEntry,
    ReshardEntry,
    StepEntry,
)
from scorer_service.selection import steps
from scorer_service.selection.session import ShardSession, lowest
from scorer_service.submodular import MapFn


class StoreShard:
    """Shard ``index`` of the store of ``config``; ``block_map`` solves diversity blocks."""

    def __init__(self, config: StoreConfig, index: int = 0, *, block_map: MapFn | None = None) -> None:
        self.config, self.index, self._block_map = config, index, block_map
        bounds = components.bounds(config)
        self.first, self.count = bounds[index], bounds[index + 1] - bounds[index]
        self.ingestor, self.journal = components.ingestor(config, index), components.journal(config, index)
        self.rounds: dict[int, RoundRecord] = {}
        self.sessions: dict[int, ShardSession] = {}
        self.load = IngestLoad()
        self.scratch = Scratch()  # the selections' temporaries, kept between rounds
        self._lock = ReadWriteLock()
        self._change = threading.RLock()  # re-entrant: a change may take a snapshot
        self._turns = WriterTurns()
        seq = self.journal.newest(config.to_dict())
        if seq is not None:
            self._load(seq)
            self.journal.replay(seq, self)
        if self.journal.durable:
            # The initial state is snapshot 1, so a run can be rewound to before its first round; a
            # restored state is written at once, so no record is ever replayed twice.
            self.snapshot(completed_round=-1 if seq is None else None)

    @property
    def state(self) -> SampleState:
        return self.ingestor.state

    # ---- changes: each logged before it is applied ----------------------------------------

    def ingest(self, data: dict[str, Any]) -> Ingested:
        """Validate and apply one byproduct batch (ids of this shard); a rejected batch changes nothing.

        A batch whose ``(writer, seq)`` was already applied is acknowledged and ignored (retried sends).
        Several calls may run at once: each writer's batches are applied in its order, and each call
        returns once its log record is as durable as the fsync policy promises.
        """
        key = None if self.journal.replaying else writer_key(data)
        if key is not None:
            first = self.ingestor.applied.low.get(key[0], -1) + 1
            self._turns.wait(*key, first=first, in_flight=in_flight(data))
        try:
            with self._change:
                ticket, reply = self._ingest(data)
        finally:
            if key is not None:
                self._turns.done(*key)
        self.journal.commit(ticket)  # outside the lock: the batches logged meanwhile share its fsync
        return reply

    def _ingest(self, data: dict[str, Any]) -> tuple[Any, Ingested]:
        t0 = time.perf_counter()
        try:
            plan = self.ingestor.plan(data)
        except InvalidBatch:
            self.journal.log(RejectedEntry())
            raise
        if plan is None:
            ticket = self.journal.log(DuplicatesEntry(), ack=True)
            return ticket, Ingested(applied=0, duplicate=True, lag_s=self.load.lag_s)
        b = plan.batch
        columns = {c: v for c, v in data.items() if isinstance(v, np.ndarray) and c not in TABLE_COLUMNS}
        table = (
            None
            if b.table_step is None or b.table_lr is None
            else (b.table_step.tolist(), b.table_lr.tolist())
        )
        entry = IngestEntry(b.round, b.rank, b.writer, b.seq, self.ingestor.ingest_seconds, columns, table)
        ticket = self.journal.log(entry, ack=True)
        if not self.journal.replaying:
            self.load.note(b)
        with self._lock.write():
            self.ingestor.apply(plan, t0)
            if b.round in self.rounds:
                self.rounds[b.round].ingested += len(b)
        if self.journal.due() and not self.sessions:  # an open selection's steps stay in one log
            self.snapshot(wait=False)
        return ticket, Ingested(applied=len(b), duplicate=False, lag_s=self.load.lag_s)

    @changes
    def select_step(self, round_: int, step: steps.Step) -> Any:
        """One step of round ``round_``'s selection (:mod:`scorer_service.selection.protocol`)."""
        if isinstance(step, steps.LOGGED):
            self.journal.log(StepEntry(round_, step))
        if isinstance(step, steps.Open):  # one selection is open at a time: a new one replaces it
            previous = self.rounds.get(round_ - 1)
            term = self.config.diversity.term
            self.sessions = {
                round_: ShardSession(
                    self.state, self.first, step.plan, previous, term, self._block_map, self.scratch
                )
            }
        session = self.sessions.get(round_)
        if session is None:
            raise NotFound(f"no selection of round {round_} is open on shard {self.index}")
        match step:
            case steps.Open():
                return session.open()
            case steps.Pool(applied, n):
                return session.pool(applied, n)
            case steps.Stage(index, stats):
                return session.stage(index, stats)
            case steps.Keys(stats, dih_range, stream):
                return session.keys(stats, dih_range, stream)
            case steps.Counts(prefix, level):
                return session.counts(prefix, level)
            case steps.Cut(threshold, ties):
                return session.cut(threshold, ties)
            case steps.Diverse(k, merge, rng):
                return session.diverse(k, merge, rng)
            case steps.Choose(ids, priority):
                return session.choose(ids, priority)
            case steps.Lowest(m):
                return session.lowest(m)
        raise TypeError(f"not a selection step: {step!r}")

    @changes
    def adopt(self, round_: int, meta: dict[str, Any]) -> int:
        """Make round ``round_``'s open selection this shard's part of the round (``meta``: the run's
        record fields): its ids, their importance weights. Adopting a round twice changes nothing."""
        session = self.sessions.pop(round_, None)
        if round_ in self.rounds or session is None:
            if round_ not in self.rounds:
                raise NotFound(f"no selection of round {round_} is open on shard {self.index}")
            return self.rounds[round_].count
        self.journal.log(AdoptEntry(round_, meta))
        weights = session.importance()
        loss_weights = session.loss_weights(sum(meta["counts"]))
        rec = RoundRecord(
            selected=session.chosen + self.first,
            codes=session.chosen_codes,
            shard=self.index,
            **_fields(meta),
        )
        with self._lock.write():
            self.state.set_importance(session.chosen, weights)
            self.state.set_loss_weight(session.chosen, loss_weights)
            if session.noise is not None:
                self.state.noise[:] = session.noise
            self.rounds[round_] = rec
        return rec.count

    @changes
    def reshard(self, round_: int, world_size: int, trim: list[int], counts: list[int]) -> None:
        """Round ``round_``'s selection for another world size: the new trim cut and counts."""
        self._round(round_)
        self.journal.log(ReshardEntry(round_, world_size, trim, counts))
        with self._lock.write():
            rec = self.rounds[round_]
            rec.world_size, rec.trim, rec.counts = world_size, (trim[0], trim[1]), list(counts)

    @changes
    def record(self, round_: int, metrics: dict[str, float], noise: dict[str, Any]) -> None:
        """Attach a round's metrics and the run's refitted label-noise mixture; the round's end."""
        self._round(round_)
        check_metrics(metrics)
        ticket = self.journal.log(RecordEntry(round_, metrics, noise), ack=True)
        s = self.state
        values = label_noise.posterior(s.loss_mean, s.seen, label_noise.NoiseFit.from_dict(noise))
        with self._lock.write():
            self.rounds[round_].metrics.update({k: float(v) for k, v in metrics.items()})
            self.rounds[round_].recorded = True
            s.noise[:] = values
        self.journal.commit(ticket, round_end=True)
        if self.journal.durable:  # in the background, unless a restart could not find it otherwise
            self.snapshot(completed_round=round_, wait=self.journal.replaying or not self.journal.logged)

    def replay(self, entry: Entry) -> None:
        """Apply one logged change again (:meth:`Journal.replay`)."""
        match entry:
            case IngestEntry():
                # The ingest time of the batches before this one, as measured when they arrived.
                self.ingestor.ingest_seconds = entry.t
                self.ingest(entry.batch())
            case StepEntry():
                self.select_step(entry.round, entry.step)
            case AdoptEntry():
                self.adopt(entry.round, entry.meta)
            case ReshardEntry():
                self.reshard(entry.round, entry.world, entry.trim, entry.counts)
            case RecordEntry():
                self.record(entry.round, entry.metrics, entry.noise)
            case RejectedEntry() | DuplicatesEntry():
                self.ingestor.counters[entry.kind] += 1

    @changes
    def snapshot(self, completed_round: int | None = None, wait: bool = True) -> int:
        """Write a snapshot (``wait``: complete on return, else in the background) and log later changes
        to a new log; returns its number. Under the change lock: one state, no copy under a read lock."""
        rounds = {r: _copy(rec) for r, rec in self.rounds.items()}
        return self.journal.snapshot(
            self.ingestor.image(), rounds, self.config.to_dict(), completed_round, wait
        )

    def _load(self, seq: int) -> None:
        image, self.rounds = self.journal.load(seq)
        self.ingestor.restore(image)

    @changes
    def rewind(self, completed_round: int) -> bool:
        """Return to the end of ``completed_round`` (-1: before the first round): forget what a lost
        training attempt ingested and selected after it. A shard not ahead is left as it is. False,
        changing nothing: ahead but no snapshots to return to; raises when that round's is gone."""
        self.sessions.clear()
        if not any(r > completed_round for r in self.rounds):
            return True
        if completed_round >= 0 and not self.journal.durable:
            return False
        if completed_round < 0:  # back to the beginning: the initial state, no snapshot needed
            with self._lock.write():
                self.ingestor.reset()
                self.rounds = {}
        else:
            self.journal.settle()  # the round's snapshot may still be being written
            seq = self.journal.round_end_seq(completed_round)
            with self._lock.write():
                self._load(seq)
        self.journal.forget_after(completed_round)
        if self.journal.durable:  # complete before the rewind is acknowledged: a restart keeps it
            self.snapshot(completed_round=-1 if completed_round < 0 else None)
        return True

    @changes
    def close(self) -> None:
        """Complete the snapshot being written and close the log: nothing of this shard writes after it
        (a store about to be deleted, whose directory may go next)."""
        self.journal.close()

    # ---- what the coordinator and the trainers read -------------------------------------

    def _round(self, round_: int) -> RoundRecord:
        rec = self.rounds.get(round_)
        if rec is None:
            raise NotFound(f"round {round_} was never selected")
        return rec

    def _read(self, gather: Callable[[], Any]) -> Any:
        with self._lock.read():
            return gather()

    @read_only
    def rank_ids(self, round_: int, rank: int, world_size: int) -> np.ndarray:
        """This shard's part of rank ``rank``'s ids of round ``round_`` (increasing)."""
        return self._read(lambda: self._round(round_).rank_ids(rank, world_size))

    @read_only
    def round_state(self, round_: int) -> dict[str, Any] | None:
        """Round ``round_``'s world size, this shard's selected count, the run's counts (None: not here)."""
        if (rec := self.rounds.get(round_)) is None:
            return None
        return {"world_size": rec.world_size, "selected": len(rec.selected), "counts": list(rec.counts)}

    def round_lowest(self, round_: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``m`` lowest of round ``round_``'s selection here, in trim order (codes, ids)."""
        rec = self._round(round_)
        return lowest(rec.codes, rec.selected, m)

    @read_only
    def round_ids(self, round_: int, start: int, stop: int) -> np.ndarray:
        """This shard's ids trained on in round ``round_``, positions ``start .. stop - 1`` of them."""
        return self._read(lambda: self._round(round_).ids[start:stop])

    @read_only
    def round_parts(self) -> list[RoundSummary]:
        """Every round's summary, with what this shard ingested in it."""
        return self._read(lambda: [self.rounds[r].summary() for r in sorted(self.rounds)])

    @read_only
    def info_part(self) -> dict[str, Any]:
        """Counters, and the load this shard is under (its lag behind the writers, their queued sends)."""
        i = self.ingestor
        return self._read(
            lambda: {
                **i.counters,
                "steps": i.lr_log.num_steps,
                "ingest_seconds": i.ingest_seconds,
                "fsyncs": self.journal.fsyncs,
                "n": self.count,
                "first": self.first,
                **self.load.report(),
            }
        )

    @read_only
    def progress(self) -> dict[int, int]:
        """Per rank, the newest optimizer step of its byproducts applied here."""
        return self._read(lambda: dict(self.ingestor.progress))

    @read_only
    def keeps(self, matrix: str) -> bool:
        """Whether this shard keeps the per-sample vectors ``matrix`` ("embedding", "outputs")."""
        return matrix in self.state.matrices

    @read_only
    def rows(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        return self._read(lambda: self.state.rows(np.asarray(ids) - self.first))

    @read_only
    def parameters(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Instance data parameters (log sigma and its momentum) of ``ids`` (of this shard)."""
        local = np.asarray(ids, dtype=np.int64) - self.first
        s = self.state
        return self._read(
            lambda: {"log_sigma": s.log_sigma[local], "log_sigma_momentum": s.log_sigma_momentum[local]}
        )

    @read_only
    def loss_weights(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The loss weights of ``ids`` (of this shard) in the newest round selected."""
        local = np.asarray(ids, dtype=np.int64) - self.first
        return self._read(lambda: {"loss_weight": self.state.loss_weight[local]})

    @read_only
    def columns(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Whole columns of this shard's samples, copied from one state."""
        return self._read(lambda: queries.columns(self.state, names))

    @read_only
    def metric_part(self, metric: str, op: str, *args: Any) -> Any:
        """This shard's part of a query over a rankable column: ``top`` (k, order) -> its k best
        (ids, values); ``range`` -> finite min, max and missing count; ``hist`` (bins, lo, hi) -> counts."""
        values = self._read(lambda: queries.metric_values(self.state, metric))
        return queries.metric_part(values, self.first, op, *args)

    @read_only
    def label_issue_part(self, threshold: float, limit: int) -> list[LabelIssue]:
        cols = self.columns(list(queries.LABEL_ISSUE_COLUMNS))
        found = queries.label_issues(cols, threshold, limit)
        return [replace(row, id=row.id + self.first) for row in found]

    @read_only
    def noise_part(self, op: str, lo: float = 0.0, hi: float = 0.0) -> dict[str, Any]:
        """This shard's part of the label-noise fit: the loss ``range``, or its ``hist`` over [lo, hi]."""
        s = self.state
        if op == "range":
            return self._read(lambda: label_noise.range_part(s.loss_mean, s.seen))
        return self._read(lambda: label_noise.histogram_part(s.loss_mean, s.seen, lo, hi))


def _fields(meta: dict[str, Any]) -> dict[str, Any]:
    out = dict(meta)
    out["trim"] = (meta["trim"][0], meta["trim"][1])
    out["counts"] = list(meta["counts"])
    return out


def _copy(rec: RoundRecord) -> RoundRecord:
    """A round for a snapshot written while the shard goes on (selections never change in place)."""
    return replace(rec, metrics=dict(rec.metrics), counts=list(rec.counts))

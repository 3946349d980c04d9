"""The store's journal: write-ahead log, snapshots, restore with replay, and rewind targets.

Every change is logged before it is applied. The fsync policy says when the log reaches the disk:
``always`` before an ingest or a round's record is acknowledged, ``round`` at each round's end,
``never`` when the operating system writes it back. A snapshot is a copy of the state taken between
two changes and written to storage by a background thread, at each round's end (the rewind targets)
and every ``every_s`` seconds within a round; each starts a new log, and a complete snapshot N makes
the logs before N unnecessary. A new store of the same run and incarnation (a restarted actor) loads
the newest complete snapshot and replays the logs from its number on, one record at a time.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from scorer_service.core.errors import Conflict, InvalidQuery
from scorer_service.core.ingest import StateImage
from scorer_service.core.rounds import RoundRecord
from scorer_service.durability.codec import rounds_from_table, rounds_table
from scorer_service.durability.entries import Entry, decode
from scorer_service.durability.entries import encode as entry_record
from scorer_service.durability.storage import RunStorage
from scorer_service.durability.wal import LogWriter, Record, encode

# Settings that must match between a store and the snapshots it restores.
IDENTITY = ("n", "method", "metric", "epochs", "output_width", "embedding_dim", "store_shards")
FSYNC_POLICIES = ("always", "round", "never")
# Where a change was logged: the log it went to and the position after it.
Ticket = tuple[LogWriter, int]

logger = logging.getLogger(__name__)


def _yield_cpu() -> None:
    """Lower this thread's CPU priority (Linux schedules threads one by one): a snapshot being written
    must not slow down the ingests it runs beside."""
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class Journal:
    """Snapshots and write-ahead log of one store incarnation under ``root``; without a root, a store
    kept in memory only: nothing is logged and there is no snapshot to write or return to."""

    def __init__(
        self, root: str | None, run: str, incarnation: str, *, every_s: float, keep: int, fsync: str
    ) -> None:
        self.storage = RunStorage(root, run, incarnation) if root else None
        self.describe = f"run {run!r} (incarnation {incarnation!r}) under {root}"
        self.every_s, self.keep, self.fsync = every_s, keep, fsync
        self.replaying = False
        # Numbers only grow, past every snapshot or log present: a restarted or rewound store must
        # not overwrite the files of the state it came from.
        self.seq = self.storage.highest_number() if self.storage else 0
        self.round_end: dict[int, int] = {}  # completed round -> snapshot seq
        self.last_snapshot = time.time()
        self._log: LogWriter | None = None
        self._closed_syncs = 0  # fsyncs of the logs this journal closed
        self._writer = (
            ThreadPoolExecutor(1, thread_name_prefix="snapshot", initializer=_yield_cpu)
            if self.storage
            else None
        )
        self._pending: Future | None = None
        self._closed = False

    @property
    def durable(self) -> bool:
        return self.storage is not None

    @property
    def logged(self) -> bool:
        """Whether changes are logged between snapshots (not on object stores, which cannot append)."""
        return self.storage is not None and self.storage.supports_wal

    @property
    def fsyncs(self) -> int:
        """How many times this journal's logs were fsynced (one fsync may cover many changes)."""
        return self._closed_syncs + (self._log.syncs if self._log is not None else 0)

    # ---- the log ------------------------------------------------------------------------

    def log(self, entry: Entry, *, ack: bool = False) -> Ticket | None:
        """Append one change before it is applied; returns where it went, for :meth:`commit`.

        ``ack``: the change will be acknowledged, so under ``always`` its fsync starts now, while the
        caller applies it.
        """
        if self._closed:
            raise Conflict("this store is being deleted: it takes no more changes")
        if self._log is None or self.replaying:
            return None
        record = encode(*entry_record(entry))
        return self._log, self._log.append(record, sync=ack and self.fsync == "always")

    def commit(self, ticket: Ticket | None, round_end: bool = False) -> None:
        """Return once the change logged as ``ticket`` is as durable as the policy promises: on disk
        under ``always``; under ``round`` at a ``round_end``, with everything logged before it.

        Needs no lock: callers that logged one after the other wait here side by side, and one
        fsync covers all of them (group commit, :class:`~.wal.LogWriter`)."""
        if ticket is None:
            return
        log, position = ticket
        if self.fsync == "always":
            log.wait(position)
        elif self.fsync == "round" and round_end:
            log.wait()

    # ---- snapshots ----------------------------------------------------------------------

    def due(self) -> bool:
        """Whether a periodic snapshot is due (never while replaying or while one is being written)."""
        idle = self._pending is None or self._pending.done()
        late = time.time() - self.last_snapshot > self.every_s
        return self.durable and not self.replaying and not self._closed and idle and late

    def snapshot(
        self,
        image: StateImage,
        rounds: dict[int, RoundRecord],
        config: dict[str, Any],
        completed_round: int | None,
        wait: bool,
    ) -> int:
        """Write ``image`` and ``rounds`` (copies the caller no longer changes) as the next snapshot
        and log every later change to a new log; returns its number. ``wait``: return once it is
        complete, else it is written in the background.

        ``completed_round`` marks it as the end of that round (a rewind target); None: the newest
        recorded round is recorded as its position. While replaying, the end of a round whose
        snapshot was not complete before the restart is written again, as a rewind target only: the
        logs being replayed stay where a restart begins.
        """
        if self._closed:
            raise Conflict("this store is being deleted: it takes no more snapshots")
        if self._writer is None:
            raise Conflict("this store keeps no snapshots: it was created without a snapshot_dir")
        seq, head = self.seq + 1, not self.replaying
        if completed_round is None:
            completed_round = max((r for r, rec in rounds.items() if rec.recorded), default=-1)
        else:
            self.round_end[completed_round] = seq
        recent = sorted(self.round_end.values())[-self.keep :]
        self.round_end = {r: s for r, s in self.round_end.items() if s in recent}
        meta = {
            "created": time.time(),
            "head": head,
            "completed_round": completed_round,
            "round_end": dict(self.round_end),
            "applied": image.applied,
            "counters": image.counters,
            "progress": {str(rank): step for rank, step in image.progress.items()},
            "config": config,
            "cum_total": float(image.cum[-1]),
        }
        self.seq = seq
        if head:
            # The old log stays needed until this snapshot is complete, so it must hold every change
            # before it on disk: a gap there, with later changes durable, would replay out of order.
            if self._log is not None:
                self._log.close(sync=self.fsync != "never")
                self._closed_syncs += self._log.syncs
            assert self.storage is not None  # snapshots are taken of durable stores only
            self._log = self.storage.open_log(seq)
            self.last_snapshot = time.time()
        self._pending = self._writer.submit(self._write, seq, meta, image, rounds, set(recent))
        self._pending.add_done_callback(self._report)
        if wait:
            self._pending.result()
        return seq

    def _write(
        self, seq: int, meta: dict[str, Any], image: StateImage, rounds: dict[int, RoundRecord], keep: set
    ) -> None:
        steps = {"lr": image.lr, "cum_before": image.cum[:-1]}
        assert self.storage is not None  # snapshots are taken of durable stores only
        self.storage.write_snapshot(seq, meta, image.columns, rounds_table(rounds), steps)
        if meta["head"]:
            self.storage.drop(below=seq, keep=keep)

    def _report(self, job: Future) -> None:
        if job.exception() is not None:
            # The logs since the last complete snapshot are kept, so nothing is lost; say why.
            logger.error("a snapshot of %s could not be written: %s", self.describe, job.exception())

    def settle(self) -> None:
        """Wait until the snapshot being written (if any) is complete."""
        if self._pending is not None:
            self._pending.result()

    def close(self) -> None:
        """Complete the snapshot being written and close the log (synced unless the policy never
        syncs): once it returns, nothing of this journal writes, so its directory may go."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._log is not None:
            self._log.close(sync=self.fsync != "never")
            self._closed_syncs += self._log.syncs
        self._log, self._writer = None, None
        self._closed = True

    # ---- restore ------------------------------------------------------------------------

    def newest(self, config: dict[str, Any]) -> int | None:
        """The number of the newest complete snapshot a restart begins at (None: there is none); raises
        when it is another run's."""
        snaps = (
            [m for m in self.storage.snapshots() if m.get("head", True)] if self.storage is not None else []
        )
        if not snaps:
            return None
        saved = snaps[-1]["config"]
        differ = [k for k in IDENTITY if saved.get(k) != config.get(k)]
        if differ:
            # Restoring another run's scores would silently mix two runs (or fail later on n).
            raise ValueError(
                f"the snapshots of {self.describe} were written with a different {', '.join(differ)}; "
                "start the run with a new incarnation or run name"
            )
        return snaps[-1]["seq"]

    def load(self, seq: int) -> tuple[StateImage, dict[int, RoundRecord]]:
        assert self.storage is not None  # a snapshot of a durable store, from newest()
        manifest = next(m for m in self.storage.snapshots() if m["seq"] == seq)
        columns, rounds, steps = self.storage.read_snapshot(seq)
        self.round_end = {int(r): s for r, s in manifest["round_end"].items()}
        cum = np.append(steps["cum_before"], manifest["cum_total"])
        progress = {int(rank): step for rank, step in manifest.get("progress", {}).items()}
        image = StateImage(
            columns, steps["lr"], cum, manifest["applied"], dict(manifest["counters"]), progress
        )
        return image, rounds_from_table(rounds)

    def replay(self, seq: int, store: Any) -> None:
        """Apply every entry logged after snapshot ``seq`` to ``store`` (its ``replay(entry)`` applies one
        through the call that logged it, without logging it again), one record in memory at a time.

        A record that cannot be applied is quarantined (kept aside, with an error line in the log),
        not retried on every restart; the first torn record ends the replay, since nothing after it
        was acknowledged (``always``, ``round``) or can be trusted to follow it (``never``).
        """
        assert self.storage is not None  # a durable store's snapshot, from newest()
        self.replaying = True
        try:
            for log_seq in self.storage.log_numbers(seq):
                end = 0
                for record in self.storage.read_log(log_seq):
                    end = record.end
                    self._apply(store, log_seq, record)
                torn = self.storage.log_size(log_seq) - end
                if torn:
                    logger.warning(
                        "%s: the write-ahead log %d ends in %d bytes of an incomplete record; "
                        "replay stops there (that change was never acknowledged)",
                        self.describe,
                        log_seq,
                        torn,
                    )
                    break
        finally:
            self.replaying = False

    def _apply(self, store: Any, log_seq: int, record: Record) -> None:
        h = record.header
        try:
            store.replay(decode(h, record.columns or {}))
        except Exception as e:  # whatever it is, it would fail again on the next restart
            assert self.storage is not None  # replayed from a durable store's log
            path = self.storage.quarantine(log_seq, record)
            logger.error(
                "%s: quarantined the %r record ending at byte %d of write-ahead log %d, which cannot be "
                "applied (%s: %s); the store goes on without it; the record is kept in %s",
                self.describe,
                h.get("kind"),
                record.end,
                log_seq,
                type(e).__name__,
                e,
                path,
            )

    # ---- rewind targets -----------------------------------------------------------------

    def round_end_seq(self, completed_round: int) -> int:
        """The snapshot of the end of ``completed_round`` (:class:`InvalidQuery` when none is kept)."""
        seq = self.round_end.get(completed_round)
        if seq is None:
            raise InvalidQuery(
                f"no snapshot of the end of round {completed_round} (kept: {sorted(self.round_end)})"
            )
        return seq

    def forget_after(self, completed_round: int) -> None:
        self.round_end = {r: s for r, s in self.round_end.items() if r <= completed_round}

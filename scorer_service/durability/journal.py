"""The store's journal: write-ahead log, snapshots, restore with replay, and rewind targets.

Every change is logged before it is applied and acknowledged; a snapshot is written at each
round's end (the rewind targets) and every ``every_s`` seconds within a round; a new store of the
same run and incarnation (a restarted actor) loads the newest snapshot and replays the log after it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from scorer_service.core.errors import InvalidQuery
from scorer_service.core.ingest import StateImage
from scorer_service.core.rounds import RoundRecord
from scorer_service.durability.codec import rounds_from_table, rounds_table
from scorer_service.durability.storage import RunStorage

# Settings that must match between a store and the snapshots it restores.
IDENTITY = ("n", "method", "metric", "epochs", "output_width", "embedding_dim")


class Journal:
    """Snapshots and write-ahead log of one store incarnation under ``root``; without a root, a store
    kept in memory only: nothing is logged and there is no snapshot to write or return to."""

    def __init__(self, root: str | None, run: str, incarnation: str, *, every_s: float, keep: int) -> None:
        self.storage = RunStorage(root, run, incarnation) if root else None
        self.describe = f"run {run!r} (incarnation {incarnation!r}) under {root}"
        self.every_s, self.keep = every_s, keep
        self.replaying = False
        self.seq = 0
        self.round_end: dict[int, int] = {}  # completed round -> snapshot seq
        self.last_snapshot = time.time()

    @property
    def durable(self) -> bool:
        return self.storage is not None

    def log(self, header: dict[str, Any], columns: dict[str, np.ndarray] | None = None) -> None:
        if self.durable and not self.replaying:
            self.storage.append(header, columns)

    def due(self) -> bool:
        """Whether a periodic snapshot is due (never while replaying)."""
        return self.durable and not self.replaying and time.time() - self.last_snapshot > self.every_s

    def write(
        self,
        image: StateImage,
        rounds: dict[int, RoundRecord],
        config: dict[str, Any],
        completed_round: int | None,
    ) -> int:
        """Write a snapshot now (atomically) and start a new log after it; returns its number.

        ``completed_round`` marks it as the end of that round (a rewind target); None: the newest
        round with metrics is recorded as its position.
        """
        if not self.durable:
            raise InvalidQuery("this store has no snapshot_dir")
        seq = self.seq + 1
        if completed_round is None:
            completed_round = max((r for r, rec in rounds.items() if rec.metrics), default=-1)
        else:
            self.round_end[completed_round] = seq
        meta = {
            "created": time.time(),
            "completed_round": completed_round,
            "round_end": dict(self.round_end),
            "applied": image.applied,
            "counters": image.counters,
            "config": config,
            "cum_total": float(image.cum[-1]),
        }
        steps = {"lr": image.lr, "cum_before": image.cum[:-1]}
        self.storage.write_snapshot(seq, meta, image.columns, rounds_table(rounds), steps)
        self.storage.start_log(seq, fresh=True)
        self.seq, self.last_snapshot = seq, time.time()
        recent = sorted(self.round_end.values())[-self.keep :]
        self.storage.drop({seq, *recent})
        self.round_end = {r: s for r, s in self.round_end.items() if s in recent or s == seq}
        return seq

    def newest(self, config: dict[str, Any]) -> int | None:
        """The newest snapshot's number (None: there is none); raises when it is another run's."""
        snaps = self.storage.snapshots() if self.durable else []
        if not snaps:
            return None
        saved = snaps[-1]["config"]
        differ = [k for k in IDENTITY if saved[k] != config[k]]
        if differ:
            # Restoring another run's scores would silently mix two runs (or fail later on n).
            raise ValueError(
                f"the snapshots of {self.describe} were written with a different {', '.join(differ)}; "
                "start the run with a new incarnation or run name"
            )
        return snaps[-1]["seq"]

    def load(self, seq: int) -> tuple[StateImage, dict[int, RoundRecord]]:
        manifest = next(m for m in self.storage.snapshots() if m["seq"] == seq)
        columns, rounds, steps = self.storage.read_snapshot(seq)
        self.round_end = {int(r): s for r, s in manifest["round_end"].items()}
        # Sequence numbers only grow: a rewound store must not reuse the numbers of the lost attempt.
        self.seq = max(self.seq, seq)
        cum = np.append(steps["cum_before"], manifest["cum_total"])
        image = StateImage(columns, steps["lr"], cum, manifest["applied"], dict(manifest["counters"]))
        return image, rounds_from_table(rounds)

    def replay(self, seq: int, store: Any) -> None:
        """Apply every record logged after snapshot ``seq`` to ``store`` through the calls that logged
        them (without logging them again); then keep appending to that log."""
        self.replaying = True
        try:
            for h, columns in self.storage.read_log(seq):
                if h["kind"] == "ingest":
                    store.ingest({**columns, **{k: h[k] for k in ("round", "rank", "writer", "seq")}})
                elif h["kind"] in ("select", "world"):
                    store.subset(h["round"], 0, h["world"])
                elif h["kind"] == "record":
                    store.record_round(h["round"], h["metrics"])
        finally:
            self.replaying = False
        self.storage.start_log(seq)

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

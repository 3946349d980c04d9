"""Each writer's batches applied in its own order, although several ingest calls run at once.

A store acknowledges an ingest only once its log record is on disk; so that several writers' batches
can share one fsync, ingest calls run on several threads. Ray hands a caller's calls to those threads
in order, but which thread runs first is up to the scheduler, and a writer's batches must be applied
in the order it numbered them: a sample seen again in the next batch, at a later step, would
otherwise be refused as stale. A writer numbers its sends 0, 1, 2, ... (``seq``), so a batch waits
until the one before it was handled (applied, refused, or found to be a duplicate).

The wait is bounded: a batch whose predecessor never arrives (a send that failed before it reached
the store, a writer first seen after a restart) goes ahead once the time is up. How long depends on
what the writer said when it sent the batch (``queued``: its unacknowledged sends, this one
included). With earlier sends still in flight the predecessor is on its way, and the batch waits up
to ``in_flight_patience_s`` for it: on a machine so loaded that the thread holding the predecessor
does not run for seconds (the soak benchmark saw this at load averages above 15 on 2 cores) the
batch is still applied in order. Otherwise (the predecessor was acknowledged before this send, or
the writer does not say) a gap is a lost send, and it waits only ``patience_s``.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class WriterTurns:
    """The next sequence number each writer's batches are waiting for."""

    def __init__(self, patience_s: float = 0.5, in_flight_patience_s: float = 30.0) -> None:
        self.patience_s, self.in_flight_patience_s = patience_s, in_flight_patience_s
        self._next: dict[str, int] = {}
        self._cond = threading.Condition()

    def wait(self, writer: str, seq: int, first: int = 0, in_flight: int = 0) -> None:
        """Return when batch ``seq`` of ``writer`` is next (or the patience has passed); ``first``:
        the number expected of a writer not seen since this store started (after a restart, the one
        after the last applied); ``in_flight``: the writer's unacknowledged sends when it sent this
        one, this one included (0: not said)."""
        patience = self.in_flight_patience_s if in_flight > 1 else self.patience_s
        with self._cond:
            deadline = time.monotonic() + patience
            while seq > self._next.get(writer, first):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def done(self, writer: str, seq: int) -> None:
        """Batch ``seq`` of ``writer`` was handled: the next may go."""
        with self._cond:
            if seq + 1 > self._next.get(writer, -1):
                self._next[writer] = seq + 1
                self._cond.notify_all()


def writer_key(data: dict[str, Any]) -> tuple[str, int] | None:
    """A batch's writer and sequence number; None when it lacks them (the store then refuses it)."""
    try:
        return str(data["writer"]), int(data["seq"])
    except (KeyError, TypeError, ValueError):
        return None


def in_flight(data: dict[str, Any]) -> int:
    """How many sends the batch's writer had unacknowledged when it sent it (0: not said, or not a
    number: validation refuses the batch after its turn)."""
    try:
        return int(data.get("queued") or 0)
    except (TypeError, ValueError):
        return 0

"""Each writer's batches applied in its own order, although several ingest calls run at once.

A store acknowledges an ingest only once its log record is on disk; so that several writers' batches
can share one fsync, ingest calls run on several threads. Ray hands a caller's calls to those threads
in order, but which thread runs first is up to the scheduler, and a writer's batches must be applied
in the order it numbered them: a sample seen again in the next batch, at a later step, would
otherwise be refused as stale. A writer numbers its sends 0, 1, 2, ... (``seq``), so a batch waits
until the one before it was handled (applied, refused, or found to be a duplicate).

The wait is bounded (``patience_s``): a batch whose predecessor never arrives (a send that failed
before it reached the store, a writer first seen after a restart) goes ahead once that time is up.
On a machine so loaded that the thread holding the predecessor does not run within that time, the
batch goes ahead out of order and may be refused (its first step's learning rate not logged yet);
the soak benchmark has seen this at load averages above 15 on 2 cores.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class WriterTurns:
    """The next sequence number each writer's batches are waiting for."""

    def __init__(self, patience_s: float = 0.5) -> None:
        self.patience_s = patience_s
        self._next: dict[str, int] = {}
        self._cond = threading.Condition()

    def wait(self, writer: str, seq: int, first: int = 0) -> None:
        """Return when batch ``seq`` of ``writer`` is next (or ``patience_s`` has passed); ``first``:
        the number expected of a writer not seen since this store started (after a restart, the one
        after the last applied)."""
        with self._cond:
            deadline = time.monotonic() + self.patience_s
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

"""How far a store (shard) is behind its writers: what it reports so that writers slow down.

Each batch may say when its writer sent it and how many of the writer's sends were unacknowledged
then (``sent``, ``queued``: :mod:`.byproducts`). The lag is the time from a batch's sending to the
start of its application (queueing and transfer; on a cluster, plus the nodes' clock difference),
averaged over recent batches. The queue is, per writer, the sends that were still behind its latest
applied batch (a writer's sends are applied in order), added over the writers heard from lately.
"""

from __future__ import annotations

import time
from typing import Any

from scorer_service.core.wire.validation import ByproductBatch

SMOOTHING = 0.2
FORGET_S = 60.0  # a writer not heard from for this long has stopped (finished, or died)


class IngestLoad:
    """The lag and queue of one store (shard), from the batches it applies."""

    def __init__(self) -> None:
        self.lag_s = 0.0
        self.max_lag_s = 0.0
        self._behind: dict[str, tuple[int, float]] = {}

    def note(self, batch: ByproductBatch, now: float | None = None) -> None:
        """A batch is about to be applied (``now``: the time, default the clock's)."""
        now = time.time() if now is None else now
        if batch.sent > 0:
            lag = max(0.0, now - batch.sent)
            self.lag_s += SMOOTHING * (lag - self.lag_s)
            self.max_lag_s = max(self.max_lag_s, lag)
        if batch.queued > 0:
            self._behind[batch.writer] = (batch.queued - 1, now)

    def report(self, now: float | None = None) -> dict[str, Any]:
        """Lag (recent average and largest), queued sends and the writers they come from."""
        now = time.time() if now is None else now
        live = {w: q for w, (q, t) in self._behind.items() if now - t < FORGET_S}
        return {
            "lag_s": self.lag_s,
            "max_lag_s": self.max_lag_s,
            "queued": sum(live.values()),
            "writers": len(live),
        }

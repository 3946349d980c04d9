"""Rounds: what each round selected, held where the samples are, and its split into equal rank slices.

A round's selection is kept by the store shard that holds each sample (one store: all of it), with
its selection key; the record's other fields (sizes, metrics, histograms) are the run's and the same
in every shard. The ids trained on are the selection trimmed to a multiple of the world size by
dropping the lowest keys (ties: highest id first), so equal rank slices keep DDP steps in lockstep.
Ranks take positions in increasing id order: position p goes to rank p mod W. A store shard owns a
contiguous id range, so it knows its ids' positions from the counts of the shards before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from scorer_service.core.errors import InvalidQuery
from scorer_service.core.wire.answers import RoundSummary

# No trim: every selected sample is trained on.
NO_CUT = (0, -1)


def rank_slice(ids: np.ndarray, rank: int, world_size: int, offset: int = 0) -> np.ndarray:
    """Rank ``rank``'s part of ``ids``, which stand at global positions ``offset ..``: position p
    goes to rank p mod ``world_size``. Over all parts of a selection whose size is a multiple of
    ``world_size``, slices are disjoint, equally long, and their union is the selection."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return ids[(rank - offset) % world_size :: world_size]


def dropped(codes: np.ndarray, ids: np.ndarray, cut: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Mask of the selected samples a trim cut removes: those at or below ``cut = (code, id)`` in the
    order of increasing code, then decreasing id."""
    code, last = cut
    if last < 0:
        return np.zeros(len(ids), dtype=bool)
    c = np.uint64(code)
    below: npt.NDArray[np.bool_] = (codes < c) | ((codes == c) & (ids >= last))
    return below


def check_metrics(metrics: dict[str, Any]) -> None:
    """A round's metrics must be numbers (test accuracy, train loss, ...)."""
    bad = {k: v for k, v in metrics.items() if not isinstance(v, int | float) or isinstance(v, bool)}
    if bad:
        raise InvalidQuery(f"metrics must be numbers, got {bad}")


@dataclass
class RoundRecord:
    """One round's selection (this shard's part of it) and what the trainers reported about it.

    ``selected``: this shard's selected ids in increasing order, ``codes`` their selection keys
    (:func:`~.radix.sortable`); ``trim``: the cut that makes the run's selection a multiple of
    ``world_size``; ``counts``: how many ids each shard trains on (the run's size is their sum).
    """

    round: int
    cycle: int
    selector: str
    budget: int
    selected: np.ndarray
    world_size: int
    selection_ms: float
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    trim: tuple[int, int] = NO_CUT
    counts: list[int] = field(default_factory=list)
    shard: int = 0
    ingested: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    # Whether the round's end was recorded (with metrics or none): a completed round.
    recorded: bool = False
    # DIH distribution at selection time, so the rounds' score distributions can be compared later.
    dih_histogram: dict[str, list[float]] = field(default_factory=dict)
    # What the selection did besides picking: samples left out as likely mislabeled, ...
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        """This shard's ids trained on, in increasing order."""
        return self.selected[~dropped(self.codes, self.selected, self.trim)]

    @property
    def count(self) -> int:
        """How many ids this shard trains on (``len(ids)``, without gathering them)."""
        return len(self.selected) - int(np.count_nonzero(dropped(self.codes, self.selected, self.trim)))

    @property
    def left_out(self) -> np.ndarray:
        """This shard's selected ids that the trim left out (they lead the next warm-start round)."""
        return self.selected[dropped(self.codes, self.selected, self.trim)]

    @property
    def size(self) -> int:
        """Ids trained on over the whole run."""
        return int(sum(self.counts))

    @property
    def offset(self) -> int:
        """Global position of this shard's first id trained on."""
        return int(sum(self.counts[: self.shard]))

    def rank_ids(self, rank: int, world_size: int) -> np.ndarray:
        if world_size != self.world_size:
            raise InvalidQuery(f"round {self.round} is shared by {self.world_size} ranks, not {world_size}")
        return rank_slice(self.ids, rank, world_size, self.offset)

    def meta(self) -> dict[str, Any]:
        """The fields every shard holds alike (as a JSON-friendly dict)."""
        return {
            "round": self.round,
            "cycle": self.cycle,
            "selector": self.selector,
            "budget": self.budget,
            "world_size": self.world_size,
            "selection_ms": self.selection_ms,
            "trim": list(self.trim),
            "counts": list(self.counts),
            "dih_histogram": self.dih_histogram,
            "details": self.details,
        }

    def summary(self) -> RoundSummary:
        """The round as this shard knows it (``ingested``: its samples' observations)."""
        return RoundSummary(
            round=self.round,
            cycle=self.cycle,
            selector=self.selector,
            budget=self.budget,
            size=self.size,
            world_size=self.world_size,
            selection_ms=self.selection_ms,
            ingested=self.ingested,
            metrics=dict(self.metrics),
            recorded=self.recorded,
            dih_histogram=self.dih_histogram,
            details=dict(self.details),
        )

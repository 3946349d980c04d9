"""Rounds: what each round selected, and its split into equal-length rank shards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer_service.core.errors import InvalidQuery


def usable_size(k: int, world_size: int) -> int:
    """Largest multiple of ``world_size`` not above ``k``: equal shards keep DDP steps in lockstep."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return (k // world_size) * world_size


def shard(ids: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s shard of ``ids``: strided, so each shard mixes the selection order evenly.

    ``len(ids)`` must be a multiple of ``world_size``; shards are disjoint, equally long, and
    their union is ``ids``.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if len(ids) % world_size:
        raise ValueError(f"{len(ids)} ids do not split evenly over {world_size} ranks")
    return ids[rank::world_size]


def check_metrics(metrics: dict[str, Any]) -> None:
    """A round's metrics must be numbers (test accuracy, train loss, ...)."""
    bad = {k: v for k, v in metrics.items() if not isinstance(v, int | float) or isinstance(v, bool)}
    if bad:
        raise InvalidQuery(f"metrics must be numbers, got {bad}")


@dataclass
class RoundRecord:
    """One round's selection and what the trainers reported about it."""

    round: int
    cycle: int
    selector: str
    budget: int
    selected: np.ndarray
    world_size: int
    selection_ms: float
    ingested: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    # DIH distribution at selection time, so the rounds' score distributions can be compared later.
    dih_histogram: dict[str, list[float]] = field(default_factory=dict)
    # What the selection did besides picking: samples left out as likely mislabeled, ...
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        """The ids trained on: the selection trimmed to equal rank shards."""
        return self.selected[: usable_size(len(self.selected), self.world_size)]

    def summary(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "cycle": self.cycle,
            "selector": self.selector,
            "budget": self.budget,
            "size": int(len(self.ids)),
            "world_size": self.world_size,
            "selection_ms": self.selection_ms,
            "ingested": self.ingested,
            "metrics": dict(self.metrics),
            "dih_histogram": self.dih_histogram,
            "details": dict(self.details),
        }

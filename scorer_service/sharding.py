"""Split one round's subset into equal-length rank shards."""

from __future__ import annotations

import numpy as np


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

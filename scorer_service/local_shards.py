"""The shards of a store kept in this process: the :class:`~scorer_service.selection.protocol.ShardGroup`
of a store that is not spread over actors (``scorer_service.ray`` has the one that is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from scorer_service.config import StoreConfig, components
from scorer_service.shard import StoreShard
from scorer_service.submodular import MapFn

T = TypeVar("T")


class LocalShards:
    """The shards of a store, all in this process, asked one after another."""

    def __init__(self, config: StoreConfig, block_map: MapFn | None = None) -> None:
        count = max(1, config.sharding.store_shards)
        self.shards = [StoreShard(config, i, block_map=block_map) for i in range(count)]
        self.bounds = np.asarray(components.bounds(config))

    def call(self, fn: Callable[..., T], args: list[tuple | None]) -> list[T]:
        """``fn(shard i, *args[i])`` of every shard i, by the shard's own method of ``fn``'s name (as an
        actor answers it); a shard whose ``args[i]`` is None is not asked (its answer is None)."""
        answers: list[Any] = [
            None if a is None else getattr(s, fn.__name__)(*a) for s, a in zip(self.shards, args, strict=True)
        ]
        return answers

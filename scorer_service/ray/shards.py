"""A store's shard actors as the coordinator's :class:`~scorer_service.selection.protocol.ShardGroup`.

Every call goes to all the shards it names at once and waits for all of them. Methods marked
:func:`~scorer_service.core.wire.interface.read_only` (score queries, rank ids, the parts of the label-noise
fit) run in each shard's "query" concurrency group, so they do not wait behind ingests queued for the
shard; ingests run in its "ingest" group (several at once, sharing fsyncs: :mod:`scorer_service.shard`);
every other change, and every step of a selection, runs in its default group, one call at a time, in
order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import ray

from scorer_service.core.wire.interface import is_read_only
from scorer_service.ray.errors import callee_errors

T = TypeVar("T")


def method(handle: ray.actor.ActorHandle, fn: Callable[..., Any]) -> Any:
    """``handle``'s method of ``fn``'s name, in the concurrency group it belongs to: "query" for a method
    marked :func:`~scorer_service.core.wire.interface.read_only`."""
    m = getattr(handle, fn.__name__)
    return m.options(concurrency_group="query") if is_read_only(fn) else m


class RayShards:
    """The shard actors ``handles`` (in id order) of a store whose shards hold ``bounds``."""

    def __init__(self, handles: list[ray.actor.ActorHandle], bounds: list[int]) -> None:
        self.handles, self.bounds = handles, np.asarray(bounds)

    def call(self, fn: Callable[..., T], args: list[tuple | None]) -> list[T]:
        refs = [
            None if a is None else method(h, fn).remote(*a) for h, a in zip(self.handles, args, strict=True)
        ]
        with callee_errors():
            answers: list[Any] = [None if r is None else ray.get(r) for r in refs]
            return answers

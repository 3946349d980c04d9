"""A store's shard actors as the coordinator's :class:`~scorer_service.selection.protocol.ShardGroup`.

Every call goes to all the shards it names at once and waits for all of them. Calls that only read
(score queries, rank ids, the parts of the label-noise fit) go to each shard's "query" concurrency
group, so they do not wait behind ingests queued for the shard; ingests run in its "ingest" group
(several at once, sharing fsyncs: :mod:`scorer_service.shard`); every other change, and every step of
a selection, runs in its default group, one call at a time, in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from scorer_service.ray.errors import callee_errors

# Read-only calls of a shard, answered from its "query" concurrency group.
SHARD_QUERIES = frozenset(
    {
        "rows",
        "parameters",
        "loss_weights",
        "columns",
        "metric_part",
        "label_issue_part",
        "round_parts",
        "round_ids",
        "round_state",
        "rank_ids",
        "info_part",
        "keeps",
        "noise_part",
        "load",
        "progress",
    }
)


def method(handle: ray.actor.ActorHandle, name: str) -> Any:
    """``handle``'s method ``name``, in the concurrency group it belongs to."""
    m = getattr(handle, name)
    return m.options(concurrency_group="query") if name in SHARD_QUERIES else m


class RayShards:
    """The shard actors ``handles`` (in id order) of a store whose shards hold ``bounds``."""

    def __init__(self, handles: list[ray.actor.ActorHandle], bounds: list[int]) -> None:
        self.handles, self.bounds = handles, np.asarray(bounds)

    def call(self, name: str, args: list[tuple | None]) -> list[Any]:
        refs = [
            None if a is None else method(h, name).remote(*a) for h, a in zip(self.handles, args, strict=True)
        ]
        with callee_errors():
            return [None if r is None else ray.get(r) for r in refs]

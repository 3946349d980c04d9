"""A run's store actors as a trainer's endpoint (see :mod:`curriculum._internal.endpoint`).

A store of one shard is one actor, and every call goes to it. A store of S > 1 shards is a
coordinator and S shard actors: byproduct batches are checked here, split by shard and sent to the
shards directly (one part each, so every shard gets every batch's learning rates), and a rank's ids
of a round come from the shards directly once the coordinator has selected the round; everything
else goes to the coordinator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from scorer_service.core.errors import NotFound
from scorer_service.core.split import acknowledged, check, split
from scorer_service.core.wire import NAMESPACE, actor_name, shard_name


class ActorEndpoint:
    """A run's store actors, looked up by run name on the connected Ray cluster."""

    def __init__(self, run: str, handle: ray.actor.ActorHandle | None = None) -> None:
        self.run = run
        self.handle = handle if handle is not None else _actor(actor_name(run), f"no store for run {run!r}")
        self.config = self.result(self.handle.info.remote())["config"]
        count = int(self.config.get("store_shards", 1))
        missing = f"no store shards for run {run!r}"
        self.shards = [_actor(shard_name(run, i), missing) for i in range(count)] if count > 1 else []
        n = int(self.config["n"])
        self.bounds = np.asarray([i * n // max(1, count) for i in range(max(1, count) + 1)])

    def call(self, name: str, *args: Any) -> Any:
        if self.shards and name == "subset":
            round_, rank, world, *step = args
            self.result(self.handle.prepare.remote(round_, world, *step))
            parts = _get(
                [
                    s.rank_ids.options(concurrency_group="query").remote(round_, rank, world)
                    for s in self.shards
                ]
            )
            return np.concatenate([np.zeros(0, np.int64), *parts])
        return self.result(self.submit(name, *args))

    def submit(self, name: str, *args: Any) -> ray.ObjectRef | list[ray.ObjectRef]:
        if self.shards and name == "ingest":
            cfg = self.config
            widths = {"outputs": cfg["output_width"], "embedding": cfg["embedding_dim"]}
            batch = check(args[0], int(cfg["n"]), widths, correct=bool(cfg["correct"]))
            parts = split(args[0], batch, self.bounds)
            return [s.ingest.remote(part) for s, part in zip(self.shards, parts, strict=True)]
        return getattr(self.handle, name).remote(*args)

    def result(self, pending: ray.ObjectRef | list[ray.ObjectRef]) -> Any:
        """The answer of a call from :meth:`submit` (of a batch sent in parts: its acknowledgement)."""
        return acknowledged(_get(pending)) if isinstance(pending, list) else _get(pending)


def _get(pending: ray.ObjectRef | list[ray.ObjectRef]) -> Any:
    """``ray.get``, raising the store's own errors (``ValueError``, ``KeyError``) with its message."""
    try:
        return ray.get(pending)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if e.cause is not None else e.as_instanceof_cause()
        if isinstance(cause, ValueError | KeyError):
            raise cause from None
        raise


def _actor(name: str, missing: str) -> ray.actor.ActorHandle:
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        raise NotFound(missing) from None

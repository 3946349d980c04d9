"""A run's store actors as a trainer's endpoint (see :mod:`curriculum._internal.endpoint`).

A store of one shard is one actor, and every call goes to it. A store of S > 1 shards is a
coordinator and S shard actors: byproduct batches are checked here, split by shard and sent to the
shards directly (one part each, so every shard gets every batch's learning rates), and a rank's ids
of a round come from the shards directly once the coordinator has selected the round; everything
else goes to the coordinator. Each method is that of
:class:`~scorer_service.core.wire.interface.StoreInterface`, answered by the actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import ray

from scorer_service.core.errors import CurriculumError, NotFound
from scorer_service.core.wire.answers import Histogram, LabelIssue, RoundSummary, RunInfo, Subset, TopEntry
from scorer_service.core.wire.batch import NAMESPACE, Ingested, actor_name, shard_name
from scorer_service.core.wire.split import acknowledged, check, split
from scorer_service.ray.errors import unwrap

if TYPE_CHECKING:
    from scorer_service.core.state import Sample

# A byproduct send in flight: one call, or one per shard for a batch sent in parts.
Pending: TypeAlias = ray.ObjectRef | list[ray.ObjectRef]


class ActorEndpoint:
    """A run's store actors, looked up by run name on the connected Ray cluster."""

    def __init__(self, run: str, handle: ray.actor.ActorHandle | None = None) -> None:
        self.run = run
        self.handle = handle if handle is not None else _actor(actor_name(run), f"no store for run {run!r}")
        self.config = self.info().config
        count = int(self.config.get("store_shards", 1))
        missing = f"no store shards for run {run!r}"
        self.shards = [_actor(shard_name(run, i), missing) for i in range(count)] if count > 1 else []
        n = int(self.config["n"])
        self.bounds = np.asarray([i * n // max(1, count) for i in range(max(1, count) + 1)])

    # ---- the trainers' calls -------------------------------------------------------------

    def ingest(self, data: dict[str, Any]) -> Ingested:
        return self.ingest_result(self.send_ingest(data))

    def send_ingest(self, data: dict[str, Any]) -> Pending:
        if self.shards:
            cfg = self.config
            widths = {"outputs": cfg["output_width"], "embedding": cfg["embedding_dim"]}
            batch = check(data, int(cfg["n"]), widths, correct=bool(cfg["correct"]))
            parts = split(data, batch, self.bounds)
            return [s.ingest.remote(part) for s, part in zip(self.shards, parts, strict=True)]
        return self.handle.ingest.remote(data)

    def ingest_result(self, pending: Pending) -> Ingested:
        """The acknowledgement of a send (of a batch sent in parts: its parts' acknowledgement)."""
        return acknowledged(_get(pending)) if isinstance(pending, list) else _get(pending)

    def subset(self, round_: int, rank: int, world_size: int, step: int | None = None) -> np.ndarray:
        # A stand-in store may take no step: pass it only when there is one.
        steps = () if step is None else (step,)
        if not self.shards:
            return _get(self.handle.subset.remote(round_, rank, world_size, *steps))
        self.prepare(round_, world_size, *steps)
        parts = _get(
            [
                s.rank_ids.options(concurrency_group="query").remote(round_, rank, world_size)
                for s in self.shards
            ]
        )
        return np.concatenate([np.zeros(0, np.int64), *parts])

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        return _get(self.handle.record_round.remote(round_, metrics))

    def rewind(self, completed_round: int) -> bool:
        return _get(self.handle.rewind.remote(completed_round))

    def info(self) -> RunInfo:
        return _get(self.handle.info.remote())

    def parameters(self, ids: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        return _get(self.handle.parameters.remote(ids))

    def loss_weights(self, ids: np.ndarray | list[int]) -> np.ndarray:
        return _get(self.handle.loss_weights.remote(ids))

    # ---- the rest of the store's methods -------------------------------------------------

    def prepare(self, round_: int, world_size: int, step: int | None = None) -> list[int]:
        steps = () if step is None else (step,)
        return _get(self.handle.prepare.remote(round_, world_size, *steps))

    def snapshot(self) -> int:
        return _get(self.handle.snapshot.remote())

    def round_summaries(self) -> list[RoundSummary]:
        return _get(self.handle.round_summaries.remote())

    def samples(self, ids: np.ndarray | list[int]) -> list[Sample]:  # type: ignore[valid-type]
        return _get(self.handle.samples.remote(ids))

    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[TopEntry]:
        return _get(self.handle.top.remote(metric, k, order))

    def histogram(self, metric: str = "dih", bins: int = 20) -> Histogram:
        return _get(self.handle.histogram.remote(metric, bins))

    def round_subset(self, round_: int, offset: int = 0, limit: int = 1000) -> Subset:
        return _get(self.handle.round_subset.remote(round_, offset, limit))

    def column(self, name: str) -> np.ndarray:
        return _get(self.handle.column.remote(name))

    def columns(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        return _get(self.handle.columns.remote(names))

    def label_issues(self, threshold: float = 0.5, limit: int = 100) -> list[LabelIssue]:
        return _get(self.handle.label_issues.remote(threshold, limit))

    def layout(self) -> list[int]:
        return _get(self.handle.layout.remote())

    def part_columns(self, shard: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        return _get(self.handle.part_columns.remote(shard, names))


def _get(pending: Pending) -> Any:
    """``ray.get``, raising the store's own errors (``CurriculumError``, and the ``ValueError`` of
    settings it refuses) with its message; anything else keeps Ray's wrapper, whose text carries the
    remote traceback."""
    try:
        return ray.get(pending)
    except ray.exceptions.RayTaskError as e:
        cause = unwrap(e)
        if isinstance(cause, CurriculumError | ValueError | KeyError):
            raise cause from None
        raise


def _actor(name: str, missing: str) -> ray.actor.ActorHandle:
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        raise NotFound(missing) from None

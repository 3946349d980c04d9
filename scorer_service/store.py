"""The hardness store of one run: a coordinator over the run's shards (one shard: the whole store).

Each :class:`~scorer_service.shard.StoreShard` holds one id range with its own snapshots and log;
the coordinator owns the selection protocol (:mod:`scorer_service.selection.protocol`), routes each
call to the shards that hold its ids and merges their answers, so every caller sees one store.
Shards are plain objects in this process (:class:`LocalShards`) or actors (``scorer_service.ray``).
A store of one shard runs the very same selection as a store of many, so both select the same ids.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np

from scorer_service.config import StoreConfig
from scorer_service.config.components import planner
from scorer_service.core import queries, staleness
from scorer_service.core.errors import InvalidQuery, NotFound
from scorer_service.core.rounds import check_metrics
from scorer_service.core.state import Sample
from scorer_service.core.wire.answers import Histogram, LabelIssue, RoundSummary, RunInfo, Subset, TopEntry
from scorer_service.core.wire.batch import Ingested
from scorer_service.core.wire.interface import read_only
from scorer_service.core.wire.split import acknowledged, check, split
from scorer_service.local_shards import LocalShards
from scorer_service.selection.protocol import ShardGroup, ask, fit_noise, noisy_labels_decision, trim_cut
from scorer_service.shard import StoreShard
from scorer_service.submodular import MapFn

T = TypeVar("T")


class HardnessStore:
    """Per-sample scores of one run and its round-by-round subset selection over ``shards`` (default:
    ``config.sharding.store_shards`` shards in this process); with ``config.durability.snapshot_dir``
    every acknowledged change is durable. ``block_map`` solves diversity blocks (default: a thread pool)."""

    def __init__(
        self, config: StoreConfig, *, block_map: MapFn | None = None, shards: ShardGroup | None = None
    ) -> None:
        self.config, self.planner = config, planner(config)
        self.shards = shards if shards is not None else LocalShards(config, block_map)
        self.bounds = np.asarray(self.shards.bounds)
        self._widths = {
            "outputs": config.byproducts.output_width,
            "embedding": config.byproducts.embedding_dim,
        }

    # The first shard of a store kept in this process, and its parts (tests and benchmarks read them).
    local = property(lambda self: self.shards.shards[0])
    state = property(lambda self: self.local.state)
    ingestor = property(lambda self: self.local.ingestor)
    journal = property(lambda self: self.local.journal)
    rounds = property(lambda self: self.local.rounds)

    def _ask(self, fn: Callable[..., T], *args: Any) -> list[T]:
        return ask(self.shards, fn, *args)

    def _route(self, fn: Callable[..., dict[str, np.ndarray]], ids: np.ndarray) -> dict[str, np.ndarray]:
        return queries.assemble(len(ids), queries.route(partial(self.shards.call, fn), self.bounds, ids))

    def ingest(self, data: dict[str, Any]) -> Ingested:
        """Validate and apply one byproduct batch: split by shard, one part each (see :mod:`.shard`)."""
        if len(self.bounds) == 2:
            return self._ask(StoreShard.ingest, data)[0]
        batch = check(data, self.config.n, self._widths, correct=self.config.byproducts.correct)
        return acknowledged(
            self.shards.call(StoreShard.ingest, [(p,) for p in split(data, batch, self.bounds)])
        )

    def prepare(self, round_: int, world_size: int, step: int | None = None) -> list[int]:
        """Select round ``round_`` on its first request and re-cut it for a new world size; returns how
        many ids each shard trains on (a rank's ids are then fetched from the shards). ``step``: the
        asker's newest optimizer step, for a run with ``max_staleness`` (see :mod:`.core.staleness`)."""
        if not 0 <= round_ < self.config.epochs:
            raise InvalidQuery(f"round must be in [0, {self.config.epochs}), got {round_}")
        if world_size < 1:
            raise InvalidQuery(f"world_size must be >= 1, got {world_size}")
        held = self._ask(StoreShard.round_state, round_)
        if any(h is None for h in held):  # after a failure half-way this selects the same again
            progress = partial(self._ask, StoreShard.progress)
            lag = staleness.admit(round_, world_size, step, self.config.sharding.max_staleness, progress)
            noise = fit_noise(self.shards) if self.planner.denoise is not None else None
            noisy = noisy_labels_decision(self.round_summaries()) if noise is not None else None
            meta = self.planner.select(self.shards, round_, world_size, noise, noisy)
            self._ask(StoreShard.adopt, round_, meta | {"details": meta["details"] | lag})
            held = self._ask(StoreShard.round_state, round_)
        states = cast(list[dict[str, Any]], held)  # every shard holds the round now
        if states[0]["world_size"] != world_size:  # elastic training: the same selection, re-cut
            selected = [h["selected"] for h in states]
            m = sum(selected) % world_size
            cut, counts = trim_cut(self._ask(StoreShard.round_lowest, round_, m) if m else [], selected, m)
            self._ask(StoreShard.reshard, round_, world_size, list(cut), counts)
            return counts
        return states[0]["counts"]

    def subset(self, round_: int, rank: int, world_size: int, step: int | None = None) -> np.ndarray:
        """Rank ``rank``'s shard of round ``round_``'s subset (selected on the round's first request)."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise InvalidQuery(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        self.prepare(round_, world_size, step)
        return np.concatenate(
            [np.zeros(0, np.int64), *self._ask(StoreShard.rank_ids, round_, rank, world_size)]
        )

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        """Attach the trainer's end-of-round metrics (test accuracy, train loss, ...) to a round and refit
        the label-noise estimate: the round's end, snapshotted by every shard."""
        if self._ask(StoreShard.round_state, round_)[0] is None:
            raise NotFound(f"round {round_} was never selected")
        check_metrics(metrics)
        self._ask(StoreShard.record, round_, metrics, fit_noise(self.shards).to_dict())

    def snapshot(self) -> int:
        """Write a snapshot of every shard now; returns the first shard's snapshot number."""
        return self._ask(StoreShard.snapshot)[0]

    def close(self) -> None:
        """Complete every shard's snapshot being written and close its log (see :meth:`StoreShard.close`)."""
        self._ask(StoreShard.close)

    def rewind(self, completed_round: int) -> bool:
        """Return every shard to the end of ``completed_round`` (see :meth:`StoreShard.rewind`)."""
        return all(self._ask(StoreShard.rewind, completed_round))

    # ---- queries: every shard answers for its ids, from one state of its own ---------------

    @read_only
    def layout(self) -> list[int]:
        """The shards' id ranges: shard i holds ``bounds[i] .. bounds[i + 1] - 1``."""
        return self.bounds.tolist()

    @read_only
    def part_columns(self, shard: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Whole columns of shard ``shard``'s samples, copied from one state of it (export)."""
        asks = [(names,) if i == shard else None for i in range(len(self.bounds) - 1)]
        return self.shards.call(StoreShard.columns, asks)[shard]

    @read_only
    def columns(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Whole state columns (default: all), each shard's part copied from one state of it."""
        parts = self._ask(StoreShard.columns, names)
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    @read_only
    def column(self, name: str) -> np.ndarray:
        return self.columns([name])[name]

    @read_only
    def info(self) -> RunInfo:
        return queries.merge_info(
            self.config.to_dict(), self._ask(StoreShard.info_part), self.round_summaries()
        )

    @read_only
    def round_summaries(self) -> list[RoundSummary]:
        return queries.merge_rounds(self._ask(StoreShard.round_parts))

    @read_only
    def parameters(self, ids: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        """Instance data parameters (log sigma and its momentum) of ``ids``, for a rank's slice."""
        return self._route(StoreShard.parameters, queries.check_ids(ids, self.config.n))

    @read_only
    def loss_weights(self, ids: np.ndarray | list[int]) -> np.ndarray:
        """The weight of each of ``ids``' loss in the trainers' batch mean, as the newest round chose it
        (1 for selectors without weights), for a rank's slice."""
        return self._route(StoreShard.loss_weights, queries.check_ids(ids, self.config.n))["loss_weight"]

    @read_only
    def samples(self, ids: np.ndarray | list[int]) -> list[Sample]:  # type: ignore[valid-type]
        ids = queries.check_ids(ids, self.config.n)
        return queries.samples(ids, self._route(StoreShard.rows, ids))

    @read_only
    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[TopEntry]:
        return queries.merge_top(self._ask(StoreShard.metric_part, metric, "top", k, order), metric, k, order)

    @read_only
    def histogram(self, metric: str = "dih", bins: int = 20) -> Histogram:
        return queries.sharded_histogram(partial(self._ask, StoreShard.metric_part, metric), metric, bins)

    @read_only
    def round_subset(self, round_: int, offset: int = 0, limit: int = 1000) -> Subset:
        """The ids trained on in ``round_``, paged: each shard's part in id order, shard after shard."""
        state = self._ask(StoreShard.round_state, round_)[0]
        ids_of = partial(self.shards.call, StoreShard.round_ids)
        return queries.sharded_subset(state, ids_of, round_, offset, limit)

    @read_only
    def label_issues(self, threshold: float = 0.5, limit: int = 100) -> list[LabelIssue]:
        return queries.merge_label_issues(self._ask(StoreShard.label_issue_part, threshold, limit), limit)

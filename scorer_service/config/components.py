"""The parts of a store a configuration describes, made from it: the shards' id ranges, each shard's
ingest component and log, the coordinator's selection plan."""

from __future__ import annotations

from scorer_service.config.store_config import StoreConfig
from scorer_service.core.ingest import Ingestor
from scorer_service.durability.journal import Journal
from scorer_service.selection.protocol import RoundPlanner


def bounds(config: StoreConfig) -> list[int]:
    """Shard i holds the sample ids ``bounds[i] .. bounds[i + 1] - 1`` (equal ranges, in order)."""
    shards = max(1, config.sharding.store_shards)
    return [i * config.n // shards for i in range(shards + 1)]


def ingestor(config: StoreConfig, shard: int = 0) -> Ingestor:
    """A fresh ingest component for shard ``shard`` of a store of ``config``."""
    kept = config.byproducts
    ranges = bounds(config)
    return Ingestor(
        ranges[shard + 1] - ranges[shard],
        first=ranges[shard],
        metric=config.metric,
        gamma=config.gamma,
        widths={"outputs": kept.output_width, "embedding": kept.embedding_dim},
        log_sigma_init=kept.log_sigma_init,
        correct=kept.correct,
        drop_superseded=config.sharding.max_staleness >= 0,
    )


def planner(config: StoreConfig) -> RoundPlanner:
    """The coordinator's plan of every round's selection for a store of ``config``."""
    schedule = config.schedule
    return RoundPlanner(
        config.selector,
        n=config.n,
        cycles=config.cycles,
        budget=config.selection_budget,
        diversity=config.diversity.term,
        seed=config.seed,
        params=config.selector_params,
        full_pass_each_cycle=schedule.full_pass_each_cycle,
        denoise=config.denoise.threshold if config.denoise.enabled else None,
        anneal=config.selector.anneal if schedule.anneal is None else schedule.anneal,
        unbiased=config.unbiased,
    )


def journal(config: StoreConfig, shard: int = 0) -> Journal:
    """The write-ahead log and snapshots of shard ``shard`` of a store of ``config`` (memory only without
    snapshot_dir): shard 0 in the run's directory, shard i > 0 in ``shard-i`` within it."""
    d = config.durability
    return Journal(
        d.snapshot_dir,
        config.run,
        d.incarnation if shard == 0 else f"{d.incarnation}/shard-{shard:03d}",
        every_s=d.snapshot_every_s,
        keep=d.keep_snapshots,
        fsync=d.fsync,
    )

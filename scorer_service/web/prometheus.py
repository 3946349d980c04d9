"""``GET /metrics``: every run's store counters in the Prometheus text format.

The numbers live in the store actors, not in this process (Serve replicas are stateless and may be
many), so each scrape asks every store and renders a fresh registry; nothing is accumulated here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from scorer_service.core.wire.answers import RoundSummary, RunInfo
from scorer_service.core.wire.interface import StoreInterface
from scorer_service.web.auth import Guards
from scorer_service.web.directory import CALL_TIMEOUT_S, StoreDirectory
from scorer_service.web.models import errors

# Selection runs once per round and takes from well under a millisecond (top-k of a few thousand)
# to seconds (submodular selection over millions), hence the wide range.
SELECTION_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# RunInfo field -> (metric name, help); counters get the ``_total`` suffix in the exposition.
COUNTERS = {
    "ingested": ("curriculum_ingested_samples", "Per-sample byproducts applied by the store."),
    "batches": ("curriculum_ingest_batches", "Byproduct batches applied by the store."),
    "rejected": ("curriculum_rejected_batches", "Byproduct batches the store refused."),
    "duplicates": ("curriculum_duplicate_batches", "Re-sent batches acknowledged and ignored."),
    "superseded": (
        "curriculum_superseded_samples",
        "Observations dropped because the sample was already observed at a later step (max_staleness).",
    ),
    "steps": ("curriculum_optimizer_steps", "Optimizer steps in the run's learning-rate log."),
}
logger = logging.getLogger(__name__)

GAUGES = {
    "n": ("curriculum_samples", "Training samples of the run."),
    "epochs": ("curriculum_planned_rounds", "Rounds the run is configured for."),
    "rounds": ("curriculum_rounds", "Rounds whose subset has been selected."),
    "rounds_completed": ("curriculum_rounds_completed", "Rounds ended (recorded, with or without metrics)."),
    "ingest_samples_per_s": (
        "curriculum_ingest_samples_per_second",
        "Samples applied per second of ingest time, over the run.",
    ),
}


# ShardLoad field -> (metric name, help), one series per store shard.
SHARD_GAUGES = {
    "lag_s": (
        "curriculum_shard_ingest_lag_seconds",
        "Recent average time from a batch's send to its ingest.",
    ),
    "queued": ("curriculum_shard_queued_sends", "Sends waiting behind each writer's latest ingested batch."),
    "ingested": ("curriculum_shard_ingested_samples", "Per-sample byproducts the store shard applied."),
}


class _Snapshot:
    """A collector over families built before the scrape is rendered."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def _ask(directory: StoreDirectory, run: str) -> tuple[RunInfo, list[RoundSummary]] | None:
    try:
        info = await asyncio.wait_for(directory.call(run, StoreInterface.info), CALL_TIMEOUT_S)
        rounds = await asyncio.wait_for(directory.call(run, StoreInterface.round_summaries), CALL_TIMEOUT_S)
    except Exception:  # one unreachable store must not fail the scrape of the others
        return None
    return info, rounds


def _families(runs: dict[str, tuple[RunInfo, list[RoundSummary]] | None]) -> list[Metric]:
    """Metric families for ``run -> (info, round summaries)``; ``None`` marks a store that did not answer."""
    up = GaugeMetricFamily("curriculum_store_up", "Whether the run's store answered.", labels=["run"])
    run_info = GaugeMetricFamily(
        "curriculum_run_info",
        "Selection method and hardness metric of the run.",
        labels=["run", "method", "metric"],
    )
    counters = {k: CounterMetricFamily(name, doc, labels=["run"]) for k, (name, doc) in COUNTERS.items()}
    gauges = {k: GaugeMetricFamily(name, doc, labels=["run"]) for k, (name, doc) in GAUGES.items()}
    accuracy = GaugeMetricFamily(
        "curriculum_test_accuracy",
        "Test accuracy recorded for the latest round that has one.",
        labels=["run"],
    )
    selection = HistogramMetricFamily(
        "curriculum_selection_seconds", "Time the store spent selecting each round's subset.", labels=["run"]
    )
    shards = {
        k: GaugeMetricFamily(name, doc, labels=["run", "shard"]) for k, (name, doc) in SHARD_GAUGES.items()
    }
    family: CounterMetricFamily | GaugeMetricFamily
    per_run: list[tuple[str, CounterMetricFamily | GaugeMetricFamily]] = [*counters.items(), *gauges.items()]
    for run, answer in sorted(runs.items()):
        up.add_metric([run], 0.0 if answer is None else 1.0)
        if answer is None:
            continue
        info, rounds = answer
        run_info.add_metric([run, info.method, info.metric], 1.0)
        for key, family in per_run:
            family.add_metric([run], float(getattr(info, key)))
        accuracies = [r.metrics["test_accuracy"] for r in rounds if "test_accuracy" in r.metrics]
        if accuracies:
            accuracy.add_metric([run], float(accuracies[-1]))
        for index, load in enumerate(info.shards):
            for key, family in shards.items():
                family.add_metric([run, str(index)], float(getattr(load, key)))
        seconds = [r.selection_ms / 1e3 for r in rounds]
        buckets = [(repr(le), float(sum(s <= le for s in seconds))) for le in SELECTION_BUCKETS_S]
        selection.add_metric([run], [*buckets, ("+Inf", float(len(seconds)))], sum_value=sum(seconds))
    return [up, run_info, *counters.values(), *gauges.values(), accuracy, selection, *shards.values()]


def add_metrics(app: FastAPI, directory: StoreDirectory, guards: Guards) -> None:
    """Add ``GET /metrics`` (Prometheus text format) to ``app``: once the service holds scoped tokens,
    a scraper needs a ``read`` token for all runs."""

    text = {
        "description": "Prometheus text format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: text, **errors(401, 403, 503)},
        **guards.reads("all"),
    )
    async def metrics() -> Response:
        """Every run's counters, rounds and selection times in the Prometheus text format."""
        try:
            names = await asyncio.wait_for(directory.runs(), CALL_TIMEOUT_S)
        except Exception as e:  # the cluster itself is unreachable: say so instead of a bare 500
            logger.exception("cannot list the runs")
            raise HTTPException(503, "cannot list the runs of the cluster now; try again") from e
        answers = await asyncio.gather(*(_ask(directory, run) for run in names))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(_families(dict(zip(names, answers, strict=True)))))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

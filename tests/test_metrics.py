"""GET /metrics: exact Prometheus values of stores with known counters."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scorer_service.config import StoreConfig
from scorer_service.core.errors import InvalidBatch
from scorer_service.store import HardnessStore
from scorer_service.web.app import build_app
from scorer_service.web.directory import LocalDirectory
from scorer_service.web.prometheus import SELECTION_BUCKETS_S
from tests.helpers import batch

RUN = "metrics-test"


class Unreachable:
    def __getattr__(self, name: str):
        raise RuntimeError("store is down")


async def get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(path)


@pytest.fixture(scope="module")
def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    store = HardnessStore(
        StoreConfig.create(n=10, epochs=3, run=RUN, method="dihcl-greedy", warm_start=1, cycle_length=1)
    )
    store.subset(0, 0, 1)
    store.ingest(batch(range(10), np.arange(10) / 10, [True] * 10, step=0, lr=1.0, seq=0))
    store.ingest(batch(range(10), np.arange(10) / 10, [True] * 10, step=0, lr=1.0, seq=0))  # a re-send
    with pytest.raises(InvalidBatch):
        store.ingest(batch([3], [0.1], [True], step=1, lr=float("nan"), seq=1))
    store.ingest(batch(range(5), np.ones(5), [False] * 5, step=1, lr=0.5, seq=1))
    store.record_round(0, {"test_accuracy": 0.5})
    store.subset(1, 0, 1)
    store.record_round(1, {"test_accuracy": 0.75})
    # Measured times vary; fixed ones make the histogram exact.
    store.rounds[0].selection_ms, store.rounds[1].selection_ms = 0.2, 3.0

    app = build_app(LocalDirectory({RUN: store, "down": Unreachable()}))
    response = asyncio.run(get(app, "/metrics"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted({"run": RUN, **labels}.items())))]


def test_counters(scrape):
    assert value(scrape, "curriculum_ingested_samples_total") == 15
    assert value(scrape, "curriculum_ingest_batches_total") == 2
    assert value(scrape, "curriculum_rejected_batches_total") == 1
    assert value(scrape, "curriculum_duplicate_batches_total") == 1
    assert value(scrape, "curriculum_optimizer_steps_total") == 2
    assert value(scrape, "curriculum_superseded_samples_total") == 0


def test_gauges(scrape):
    assert value(scrape, "curriculum_rounds") == 2
    assert value(scrape, "curriculum_rounds_completed") == 2
    assert value(scrape, "curriculum_samples") == 10
    assert value(scrape, "curriculum_planned_rounds") == 3
    assert value(scrape, "curriculum_test_accuracy") == 0.75
    assert value(scrape, "curriculum_ingest_samples_per_second") > 0
    assert value(scrape, "curriculum_run_info", method="dihcl-greedy", metric="loss") == 1
    assert value(scrape, "curriculum_store_up") == 1


def test_selection_histogram(scrape):
    expected = {le: (le >= 0.0002) + (le >= 0.003) for le in SELECTION_BUCKETS_S}
    for le, count in expected.items():
        assert value(scrape, "curriculum_selection_seconds_bucket", le=repr(le)) == count
    assert value(scrape, "curriculum_selection_seconds_bucket", le="+Inf") == 2
    assert value(scrape, "curriculum_selection_seconds_count") == 2
    assert value(scrape, "curriculum_selection_seconds_sum") == pytest.approx(0.0032)


def test_an_unreachable_store_is_reported_not_fatal(scrape):
    assert scrape[("curriculum_store_up", (("run", "down"),))] == 0
    assert not any(labels == (("run", "down"),) for name, labels in scrape if name != "curriculum_store_up")

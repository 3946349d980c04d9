"""The trainer routes: byproducts over HTTP with the actor path's validation, messages and exactly-once."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from scorer_service.config import StoreConfig
from scorer_service.core.wire.arrow import to_ipc
from scorer_service.store import HardnessStore
from scorer_service.web.app import build_app
from scorer_service.web.directory import LocalDirectory

ARROW = {"Content-Type": "application/vnd.apache.arrow.stream", "Authorization": "Bearer tok"}
AUTH = {"Authorization": "Bearer tok"}


@pytest.fixture
def store():
    return HardnessStore(StoreConfig.create(n=20, epochs=3, run="h", warm_start=1, cycle_length=1))


@pytest.fixture
def client(store):
    return TestClient(build_app(LocalDirectory({"h": store}), token="tok"))


def columns(ids, step=0, lr=0.1):
    ids = np.asarray(ids, dtype=np.int64)
    m = len(ids)
    return {
        "sample_id": ids,
        "loss": np.linspace(0.5, 1.5, m).astype(np.float32),
        "correct": np.ones(m, dtype=bool),
        "step": np.full(m, step, dtype=np.int64),
        "lr": np.full(m, lr),
    }


def params(seq, writer="w1"):
    return {"round": 0, "rank": 0, "writer": writer, "seq": seq}


def test_shard_ingest_and_metrics_over_http(client, store):
    shard = client.get("/v1/runs/h/rounds/0/slice", params={"rank": 1, "world_size": 2}, headers=AUTH).json()
    assert shard["ids"] == store.subset(0, 1, 2).tolist() and len(shard["ids"]) == 10
    r = client.post(
        "/v1/runs/h/byproducts", params=params(0), content=to_ipc(columns(shard["ids"])), headers=ARROW
    )
    assert r.status_code == 200 and r.json() == {"applied": 10, "duplicate": False, "lag_s": 0.0}
    small = {k: v.tolist() for k, v in columns([0, 2], step=1).items()}
    r = client.post("/v1/runs/h/byproducts", params=params(1), json=small, headers=AUTH)
    assert r.json() == {"applied": 2, "duplicate": False, "lag_s": 0.0}
    assert store.ingestor.counters["ingested"] == 12 == store.state.seen.sum() and all(
        store.state.seen[shard["ids"]] >= 1
    )
    r = client.post("/v1/runs/h/rounds/0/metrics", json={"test_accuracy": 0.75}, headers=AUTH)
    assert r.json() == {"round": 0, "recorded": True} and store.rounds[0].metrics == {"test_accuracy": 0.75}
    assert client.post("/v1/runs/h/rewind", params={"completed_round": 0}, headers=AUTH).json() == {
        "rewound": True
    }


def test_a_retried_post_counts_once(client, store):
    body = to_ipc(columns(range(5)))
    first = client.post("/v1/runs/h/byproducts", params=params(7), content=body, headers=ARROW)
    again = client.post("/v1/runs/h/byproducts", params=params(7), content=body, headers=ARROW)
    assert first.json()["duplicate"] is False and again.json() == {
        "applied": 0,
        "duplicate": True,
        "lag_s": 0.0,
    }
    assert store.ingestor.counters["ingested"] == 5 and store.state.seen[:5].tolist() == [1] * 5


@pytest.mark.parametrize(
    ("body", "ctype", "status", "message"),
    [
        (b"not arrow", "application/vnd.apache.arrow.stream", 400, "body is not an Arrow IPC stream"),
        (b"{", "application/json", 400, "body is not JSON"),
        (b"[1, 2]", "application/json", 400, "JSON body must be an object"),
        (b"x", "text/plain", 415, "send application/vnd.apache.arrow.stream or application/json"),
        (to_ipc({**columns([1, 2]), "sample_id": np.array([1, 99])}), ARROW["Content-Type"], 400,
         "sample_id 99 is out of range [0, 20)"),
        (to_ipc({k: v for k, v in columns([1, 2]).items() if k != "loss"}), ARROW["Content-Type"], 400,
         "batch is missing loss"),
        (b'{"sample_id": [1, 2], "loss": [[1], 2]}', "application/json", 400, "rectangular"),
    ],
)  # fmt: skip
def test_a_malformed_post_is_a_4xx_naming_the_problem_and_changes_nothing(
    client, store, body, ctype, status, message
):
    before = store.state.copy()
    r = client.post(
        "/v1/runs/h/byproducts", params=params(0), content=body, headers={**AUTH, "Content-Type": ctype}
    )
    assert r.status_code == status and message in r.json()["detail"]
    for name, col in before.columns.items():
        np.testing.assert_array_equal(store.state.columns[name], col)
    assert store.ingestor.counters["ingested"] == 0 and store.ingestor.lr_log.num_steps == 0


def test_trainer_routes_need_the_token(client):
    body = to_ipc(columns([1]))
    assert client.post("/v1/runs/h/byproducts", params=params(0), content=body).status_code == 401
    assert client.get("/v1/runs/h/rounds/0/slice", params={"rank": 0, "world_size": 1}).status_code == 401
    assert (
        client.post("/v1/runs/nope/byproducts", params=params(0), content=body, headers=ARROW).status_code
        == 404
    )


def test_a_round_too_far_behind_the_trainers_is_425_until_the_scores_catch_up():
    store = HardnessStore(
        StoreConfig.create(n=20, epochs=3, run="h", warm_start=1, cycle_length=1, max_staleness=1)
    )
    client = TestClient(build_app(LocalDirectory({"h": store}), token="tok"))
    client.get("/v1/runs/h/rounds/0/slice", params={"rank": 0, "world_size": 1}, headers=AUTH)
    for step in range(3):
        r = client.post("/v1/runs/h/byproducts", params=params(step), json=_json([step], step), headers=AUTH)
        assert r.status_code == 200
    ask = {"rank": 0, "world_size": 1, "step": 4}
    r = client.get("/v1/runs/h/rounds/1/slice", params=ask, headers=AUTH)
    assert r.status_code == 425 and "2 steps behind step 4, and max_staleness is 1" in r.json()["detail"]
    assert 1 not in store.rounds
    client.post("/v1/runs/h/byproducts", params=params(3), json=_json([3], 3), headers=AUTH)
    r = client.get("/v1/runs/h/rounds/1/slice", params=ask, headers=AUTH)
    assert r.status_code == 200 and store.round_summaries()[1].details["staleness_steps"] == 1


def _json(ids, step):
    return {k: v.tolist() for k, v in columns(ids, step=step).items()}


def test_the_earlier_shard_route_answers_as_the_slice_route(client):
    ask = {"rank": 1, "world_size": 2}
    new = client.get("/v1/runs/h/rounds/0/slice", params=ask, headers=AUTH)
    old = client.get("/v1/runs/h/rounds/0/shard", params=ask, headers=AUTH)
    assert new.status_code == old.status_code == 200 and new.json() == old.json() and new.json()["ids"]
    spec = client.get("/openapi.json").json()["paths"]
    assert spec["/v1/runs/{run}/rounds/{round_}/shard"]["get"]["deprecated"] is True

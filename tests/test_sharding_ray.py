"""A store of shard actors behind the REST API and the public API, against one store actor."""

import io
import shutil
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
from fastapi.testclient import TestClient

import curriculum
from curriculum._internal.ray_endpoint import ActorEndpoint
from scorer_service.config import StoreConfig
from scorer_service.durability.storage import RunStorage
from scorer_service.ray.actor import NAMESPACE, create_store, delete_store, list_runs, shard_name
from scorer_service.ray.serve import RayDirectory
from scorer_service.web.app import build_app
from tests.helpers import batch

N = 3000


def build(run: str, shards: int, snapshot_dir: str) -> ray.actor.ActorHandle:
    cfg = StoreConfig.create(
        n=N, epochs=4, run=run, method="dihcl-exp", warm_start=1, cycle_length=1, seed=3,
        store_shards=shards, snapshot_dir=snapshot_dir, incarnation="t",
    )  # fmt: skip
    store = create_store(cfg)
    endpoint = ActorEndpoint(run)
    rng = np.random.default_rng(0)
    for r in range(2):
        ids = np.concatenate([endpoint.subset(r, rank, 2) for rank in range(2)])
        loss = rng.exponential(size=len(ids)).astype(np.float32)
        b = batch(ids, loss, loss < 1, step=r, lr=0.1, round_=r, seq=2 * r)
        b["label"], b["predicted"] = ids % 10, np.where(loss > 2, (ids + 1) % 10, ids % 10)
        endpoint.ingest(b)  # shard by shard, straight from the trainer's side
        ray.get(store.record_round.remote(r, {"test_accuracy": 0.5 + r / 10}))
    ray.get(store.subset.remote(2, 0, 3))
    return store


@pytest.fixture(scope="module")
def runs(ray_session, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("snapshots"))
    stores = {"rest-one": build("rest-one", 1, root), "rest-three": build("rest-three", 3, root)}
    yield stores
    for run in stores:
        delete_store(run)


def test_the_rest_api_answers_the_same_for_one_store_and_three_shards(runs):
    client = TestClient(build_app(RayDirectory()))
    paths = [
        ("/samples", {"ids": "0,999,1000,1001,2999,17"}),
        ("/top", {"metric": "dih", "k": 25}),
        ("/top", {"metric": "last_loss", "k": 25, "order": "asc"}),
        ("/top", {"metric": "noise", "k": 10}),
        ("/histogram", {"metric": "dih", "bins": 17}),
        ("/histogram", {"metric": "loss_mean", "bins": 5}),
        ("/rounds/1/subset", {"offset": 900, "limit": 300}),
        ("/rounds/2/subset", {"offset": 0, "limit": 10000}),
        ("/label-issues", {"threshold": 0.5, "limit": 30}),
    ]
    for path, params in paths:
        one = client.get(f"/v1/runs/rest-one{path}", params=params)
        three = client.get(f"/v1/runs/rest-three{path}", params=params)
        assert one.status_code == three.status_code == 200, (path, one.text, three.text)
        assert one.json() == three.json(), path
    strip = lambda rounds: [{k: v for k, v in r.items() if k != "selection_ms"} for r in rounds]  # noqa: E731
    rounds = [client.get(f"/v1/runs/{run}/rounds").json() for run in runs]
    assert strip(rounds[0]) == strip(rounds[1]) and len(rounds[0]) == 3
    info = [client.get(f"/v1/runs/{run}").json() for run in runs]
    for key in ("n", "rounds", "rounds_completed", "steps", "ingested", "batches", "rejected"):
        assert info[0][key] == info[1][key], key
    tables = [pq.read_table(io.BytesIO(client.get(f"/v1/runs/{run}/export").content)) for run in runs]
    assert tables[0].num_rows == N and tables[0].equals(tables[1])
    assert client.get("/v1/runs/rest-three/samples/3000").status_code == 404


def test_rank_ids_come_from_the_shards_and_the_run_handle_reads_one_store(runs):
    one, three = ActorEndpoint("rest-one"), ActorEndpoint("rest-three")
    assert len(three.shards) == 3 and not one.shards
    for rank in range(3):
        np.testing.assert_array_equal(one.subset(2, rank, 3), three.subset(2, rank, 3))
    a, b = curriculum.attach_run("rest-one"), curriculum.attach_run("rest-three")
    for name, col in a.scores().items():
        np.testing.assert_array_equal(b.scores((name,))[name], col, err_msg=name)
    np.testing.assert_array_equal(a.subset(1), b.subset(1))


def test_shards_are_named_actors_but_not_runs_and_go_with_their_run(runs, tmp_path):
    assert {"rest-one", "rest-three"} <= set(list_runs())
    assert not any(r.startswith("hardness-shard") or ":" in r for r in list_runs())
    build("short-lived", 2, str(tmp_path))
    ray.get_actor(shard_name("short-lived", 1), namespace=NAMESPACE)
    delete_store("short-lived")
    # Closed before it was killed: nothing of it writes any more, so its directory can go at once.
    shard_1 = RunStorage(str(tmp_path), "short-lived", "t/shard-001")
    assert 1 in {m["completed_round"] for m in shard_1.snapshots()}
    shutil.rmtree(tmp_path)
    time.sleep(0.5)
    assert not tmp_path.exists()
    with pytest.raises(ValueError):
        ray.get_actor(shard_name("short-lived", 1), namespace=NAMESPACE)
    assert "short-lived" not in list_runs()

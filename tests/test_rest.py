"""Every REST endpoint against a live Ray Serve app and a real store actor."""

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import ray

from scorer_service.config import StoreConfig
from scorer_service.ray.actor import create_store
from tests.helpers import assert_no_leak, batch, free_ports, hostile_requests

RUN = "rest-test"
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def api(ray_session):
    from ray import serve

    from scorer_service.ray.serve import start

    store = create_store(
        StoreConfig.create(n=10, epochs=4, run=RUN, method="dihcl-greedy", warm_start=1, cycle_length=1)
    )
    ray.get(store.subset.remote(0, 0, 1))
    ray.get(store.ingest.remote(batch(range(10), np.arange(10) / 10, [True] * 10, step=0, lr=1.0)))
    ray.get(store.record_round.remote(0, {"test_accuracy": 0.5}))
    ray.get(store.subset.remote(1, 0, 2))
    url = start("127.0.0.1", free_ports(1)[0])
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client
    serve.shutdown()
    ray.kill(store)


def test_health_and_runs(api):
    h = api.get("/v1/health").json()
    assert h["status"] == "ok" and h["store_reachable"] is True and RUN in h["runs"]
    runs = {r["run"]: r for r in api.get("/v1/runs").json()}
    assert runs[RUN]["n"] == 10 and runs[RUN]["method"] == "dihcl-greedy" and runs[RUN]["ingested"] == 10
    assert runs[RUN]["rounds"] == 2
    assert api.get(f"/v1/runs/{RUN}").json()["config"]["epochs"] == 4


def test_one_and_many_samples(api):
    s = api.get(f"/v1/runs/{RUN}/samples/3").json()
    assert s["id"] == 3 and s["seen"] == 1 and s["last_loss"] == pytest.approx(0.3)
    assert s["dih"] == pytest.approx(0.95 * 0.3 + 0.05)
    many = api.get(f"/v1/runs/{RUN}/samples", params={"ids": "1,2,9"}).json()
    assert [m["id"] for m in many] == [1, 2, 9]


def test_top_and_histogram(api):
    top = api.get(f"/v1/runs/{RUN}/top", params={"metric": "dih", "k": 3}).json()
    assert [t["id"] for t in top] == [9, 8, 7]
    easy = api.get(f"/v1/runs/{RUN}/top", params={"metric": "last_loss", "k": 2, "order": "asc"}).json()
    assert [t["id"] for t in easy] == [0, 1]
    h = api.get(f"/v1/runs/{RUN}/histogram", params={"metric": "last_loss", "bins": 5}).json()
    assert h["counts"] == [2, 2, 2, 2, 2] and h["edges"][0] == 0.0 and h["missing"] == 0


def test_rounds_and_subsets(api):
    rounds = api.get(f"/v1/runs/{RUN}/rounds").json()
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[0]["size"] == 10 and rounds[0]["metrics"] == {"test_accuracy": 0.5}
    assert rounds[1]["selector"] == "dihcl-greedy" and rounds[1]["size"] == 8  # 0.85 n -> 8 on 2 ranks
    page = api.get(f"/v1/runs/{RUN}/rounds/1/subset", params={"offset": 2, "limit": 3}).json()
    full = api.get(f"/v1/runs/{RUN}/rounds/1/subset").json()
    assert full["total"] == 8 and page["ids"] == full["ids"][2:5]
    assert sorted(full["ids"]) == list(range(2, 10))  # greedy kept the 8 hardest


def test_openapi_docs(api):
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert "/v1/runs/{run}/top" in paths and "/v1/runs/{run}/rounds/{round_}/subset" in paths


@pytest.mark.parametrize(
    "path, params, status, message",
    [
        ("/v1/runs/nope", None, 404, "no store for run 'nope'"),
        ("/v1/runs/nope/samples/1", None, 404, "no store"),
        (f"/v1/runs/{RUN}/samples/10", None, 404, "sample 10 does not exist"),
        (f"/v1/runs/{RUN}/samples/-1", None, 404, "sample -1 does not exist"),
        (f"/v1/runs/{RUN}/samples/abc", None, 422, None),
        (f"/v1/runs/{RUN}/samples", {"ids": "1,x"}, 422, "query parameter ids: String should match pattern"),
        (f"/v1/runs/{RUN}/samples", {"ids": ","}, 422, "query parameter ids"),
        (f"/v1/runs/{RUN}/samples", {"ids": ",".join(["1"] * 1001)}, 422, "query parameter ids"),
        (f"/v1/runs/{RUN}/samples", {"ids": "3,99"}, 404, "sample 99"),
        (f"/v1/runs/{RUN}/samples", None, 422, None),
        (
            f"/v1/runs/{RUN}/top",
            {"metric": "shoe_size"},
            422,
            "query parameter metric: Input should be 'dih'",
        ),
        (f"/v1/runs/{RUN}/top", {"k": 0}, 422, None),
        (f"/v1/runs/{RUN}/top", {"k": 10**6}, 422, None),
        (f"/v1/runs/{RUN}/top", {"order": "sideways"}, 422, None),
        (f"/v1/runs/{RUN}/histogram", {"bins": 0}, 422, None),
        (f"/v1/runs/{RUN}/histogram", {"metric": "x"}, 422, "query parameter metric"),
        (f"/v1/runs/{RUN}/rounds/7/subset", None, 404, "round 7 was never selected"),
        (f"/v1/runs/{RUN}/rounds/-1/subset", None, 422, None),
        (f"/v1/runs/{RUN}/rounds/1/subset", {"limit": 0}, 422, None),
        (f"/v1/runs/{RUN}/rounds/1/subset", {"offset": -3}, 422, None),
    ],
)
def test_bad_requests_are_4xx_with_a_message(api, path, params, status, message):
    r = api.get(path, params=params)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail
    if message:
        assert message in detail


@pytest.mark.parametrize("path, params, status, message", hostile_requests(RUN, 10))
def test_hostile_requests_get_the_stores_message_and_nothing_of_ray(api, path, params, status, message):
    r = api.get(path, params=params)
    assert r.status_code == status, r.text
    assert_no_leak(r.text)
    assert set(r.json()) <= {"detail", "type"} and message in r.json()["detail"], r.text


def _cli(*args: str) -> str:
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "trainers.cli", "token", "--address", address, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_scoped_tokens_from_the_command_line_reach_every_replica_without_a_restart(api):
    out = _cli("create", "--role", "read", "--run", RUN, "--name", "dashboard")
    header, secret = out.strip().splitlines()
    token_id = re.match(r"token ([0-9a-f]+): read on run 'rest-test'$", header).group(1)
    try:
        assert f"{token_id}  read " in _cli("list") and secret not in _cli("list")
        time.sleep(1.5)  # a replica trusts its copy of the table for up to a second
        mine = api.get(f"/v1/runs/{RUN}/top", params={"k": 2}, headers={"Authorization": f"Bearer {secret}"})
        assert mine.status_code == 200 and [t["id"] for t in mine.json()] == [9, 8]
        # A scoped token exists: reads need one now, and this one reaches only its run, for reading.
        anonymous = api.get(f"/v1/runs/{RUN}/top")
        assert anonymous.status_code == 401 and anonymous.json()["type"] == "Unauthorized"
        other = api.get("/v1/runs/other-run", headers={"Authorization": f"Bearer {secret}"})
        assert other.status_code == 403 and other.json() == {
            "detail": f"token {token_id} reaches run 'rest-test', not run 'other-run'",
            "type": "Forbidden",
        }
        write = api.post(f"/v1/runs/{RUN}/snapshot", headers={"Authorization": f"Bearer {secret}"})
        assert write.status_code == 403 and "has the role read; this needs admin" in write.json()["detail"]
    finally:
        assert f"revoked token {token_id}" in _cli("revoke", token_id)
    time.sleep(1.5)
    gone = api.get(f"/v1/runs/{RUN}/top", headers={"Authorization": f"Bearer {secret}"})
    assert gone.status_code == 401
    assert api.get(f"/v1/runs/{RUN}/top").status_code == 200  # no scoped token left: reads are open again

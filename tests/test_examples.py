"""The examples, run as a user runs them (their own process, joined to the test session's cluster)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import ray

import curriculum
from scorer_service.ray.actor import get_store
from scorer_service.ray.serve import RayDirectory
from scorer_service.web.app import build_app
from tests.helpers import free_ports, uvicorn_server

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    address = ray.get_runtime_context().gcs_address
    cmd = [sys.executable, str(EXAMPLES / name), "--address", address, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def assert_rounds_consistent(run: curriculum.Run, world: int) -> int:
    """Every round's rank shards are disjoint, equally long and cover its selection; every sample was
    observed exactly once per round it was selected for. Returns the sample passes."""
    info = run.info()
    expected = np.zeros(info.n, dtype=np.int64)
    for r in range(info.rounds):
        ids = run.subset(r)
        shards = [run.endpoint.subset(r, rank, world) for rank in range(world)]
        assert len({len(s) for s in shards}) == 1
        assert sorted(np.concatenate(shards).tolist()) == sorted(ids.tolist())
        expected[ids] += 1
    np.testing.assert_array_equal(run.scores(("seen",))["seen"], expected)
    assert info.ingested == expected.sum()
    return int(expected.sum())


def assert_queryable_over_rest(run: str) -> None:
    with uvicorn_server(build_app(RayDirectory())) as url:
        top = httpx.get(f"{url}/v1/runs/{run}/top", params={"metric": "dih", "k": 5}, timeout=30)
        assert top.status_code == 200 and len(top.json()) == 5
        one = httpx.get(f"{url}/v1/runs/{run}/samples/{top.json()[0]['id']}", timeout=30).json()
        assert one["seen"] > 0 and one["dih"] == top.json()[0]["dih"]


def test_the_readme_shows_the_own_loop_example_as_it_is():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert (EXAMPLES / "own_ray_train_loop.py").read_text() in blocks


def _train_worker_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::RayTrainWorker"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.slow
def test_own_ray_train_loop_survives_a_killed_worker(ray_session, tmp_path):
    run_name = "example-own-loop"
    killed = []

    def killer() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if get_store(run_name) and ray.get(get_store(run_name).info.remote()).rounds_completed >= 3:
                    break
            except KeyError:
                pass
            time.sleep(0.05)
        time.sleep(0.3)  # inside round 3: its byproducts are partly in the store
        pids = _train_worker_pids()
        if pids:
            os.kill(pids[-1], signal.SIGKILL)
            killed.append(pids[-1])

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    port = free_ports(1)[0]
    try:
        proc = run_example(
            "own_ray_train_loop.py", "--run", run_name, "--samples", "400", "--epochs", "6",
            "--max-failures", "2", "--storage-path", str(tmp_path), "--serve", str(port),
        )  # fmt: skip
        # The example served the API with curriculum.serve and read the hardest samples through it.
        top = httpx.get(f"http://127.0.0.1:{port}/v1/runs/{run_name}/top", params={"k": 3}, timeout=30).json()
        assert (
            f"REST API at http://127.0.0.1:{port}; hardest now: {' '.join(str(t['id']) for t in top)}"
            in proc.stdout
        )
    finally:
        from ray import serve

        serve.shutdown()
    thread.join()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert killed, "no worker was killed"
    run = curriculum.attach_run(run_name)
    assert run.info().rounds_completed == 6
    passes = assert_rounds_consistent(run, world=2)
    assert f"6 rounds, {passes} byproducts ingested" in proc.stdout
    assert_queryable_over_rest(run_name)
    run.delete()


@pytest.mark.slow
def test_torchrun_ddp_with_two_gloo_processes(ray_session):
    address = ray.get_runtime_context().gcs_address
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_ports(1)[0]), str(EXAMPLES / "torchrun_ddp.py"),
        "--address", address, "--name", "example-torchrun", "--samples", "400", "--epochs", "4",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = curriculum.attach_run("example-torchrun")
    assert run.info().rounds_completed == 4
    passes = assert_rounds_consistent(run, world=2)
    assert f"4 rounds, {passes} byproducts ingested" in proc.stdout
    assert_queryable_over_rest("example-torchrun")
    run.delete()


@pytest.mark.slow
def test_lightning_run_resumed_from_its_checkpoint_continues_the_curriculum(ray_session, tmp_path):
    common = ["--run", "example-lightning", "--samples", "320", "--epochs", "5", "--devices", "2",
              "--checkpoints", str(tmp_path)]  # fmt: skip
    crashed = run_example("lightning_callback.py", *common, "--crash-in-round", "3")
    assert crashed.returncode != 0 and "simulated crash in round 3" in crashed.stderr
    run = curriculum.attach_run("example-lightning")
    assert run.info().rounds_completed == 3 and run.info().rounds == 4  # round 3 partly ingested
    resumed = run_example("lightning_callback.py", *common, "--resume", str(tmp_path / "last.ckpt"))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert [r.round for r in run.rounds() if r.metrics] == [0, 1, 2, 3, 4]
    passes = assert_rounds_consistent(run, world=2)  # round 3's lost observations were rewound
    assert f"5 rounds, {passes} byproducts ingested" in resumed.stdout
    assert_queryable_over_rest("example-lightning")
    run.delete()


NO_RAY = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
leaked = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
assert not leaked, f"the HTTP trainer imported {leaked[:5]}"
print("no ray imported")
"""


@pytest.mark.slow
def test_http_trainer_without_ray(ray_session):
    run = curriculum.create_run("example-http", n=300, epochs=4, warm_start=1, cycle_length=1, correct=False)
    with uvicorn_server(build_app(RayDirectory(), token="tok")) as url:
        script = str(EXAMPLES / "http_trainer.py")
        cmd = [sys.executable, "-c", NO_RAY, script, "--api", url, "--run", "example-http", "--token", "tok"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no ray imported" in proc.stdout
    passes = assert_rounds_consistent(run, world=1)
    assert f"4 rounds, {passes} byproducts ingested" in proc.stdout
    assert run.info().steps > 0 and run.scores(("last_correct",))["last_correct"].max() == -1
    assert_queryable_over_rest("example-http")
    run.delete()


@pytest.mark.slow
def test_an_http_trainer_without_ray_creates_trains_reads_and_deletes_its_run(ray_session):
    """The whole life of a run from a process that never imports Ray, against ``curriculum.serve``."""
    from ray import serve

    url = curriculum.serve(port=free_ports(1)[0], token="admin-tok")
    try:
        script = str(EXAMPLES / "http_trainer.py")
        args = [
            "--api",
            url,
            "--run",
            "example-http-life",
            "--token",
            "admin-tok",
            "--create",
            "300",
            "--delete",
        ]
        proc = subprocess.run(
            [sys.executable, "-c", NO_RAY, script, *args],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "no ray imported" in proc.stdout
        assert "created run example-http-life: 300 samples, 4 rounds of dihcl-exp" in proc.stdout
        assert re.search(r"run example-http-life: 4 rounds, [1-9][0-9]* byproducts ingested", proc.stdout)
        issues = [int(i) for i in re.search(r"label issues: ([0-9 ]+)", proc.stdout).group(1).split()]
        # Every 20th target is corrupted (15 of 300): 15 ids drawn at random would hold 0.75 of them on
        # average, and 5 or more with probability below 0.001 (hypergeometric).
        assert len(issues) == 15 and sum(i % 20 == 0 for i in issues) >= 5, issues
        assert "deleted run example-http-life" in proc.stdout
        with pytest.raises(curriculum.NotFound):
            get_store("example-http-life")
        with pytest.raises(curriculum.NotFound):
            curriculum.Client(url, token="admin-tok", run="example-http-life").info()
    finally:
        serve.shutdown()

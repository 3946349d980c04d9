"""`ray job submit` against a `ray start --head` cluster of its own (own ports, own processes)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import cluster_env, cluster_processes, free_ports, kill_cluster

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def head():
    """A head node started from this interpreter's environment, so `curriculum` is on the raylet's PATH."""
    gcs, dash, client, agent, metrics, serve_port = free_ports(6)
    # A short, unique temp dir: every process of this cluster carries it (command line or environment),
    # which lets the teardown stop exactly this cluster (`ray stop` would stop every Ray on the machine).
    temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")
    env = cluster_env(temp, PATH=f"{BIN}:{os.environ['PATH']}")
    subprocess.run(
        [
            BIN / "ray",
            "start",
            "--head",
            f"--port={gcs}",
            f"--dashboard-port={dash}",
            "--dashboard-host=127.0.0.1",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}",
            f"--metrics-export-port={metrics}",
            "--num-cpus=2",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )
    try:
        yield {
            "env": env,
            "gcs": f"127.0.0.1:{gcs}",
            "dashboard": f"http://127.0.0.1:{dash}",
            "serve": serve_port,
        }
    finally:
        kill_cluster(temp)
        shutil.rmtree(temp, ignore_errors=True)
        # Every process it started is gone, the Ray client server (reparented to init) included.
        assert cluster_processes(temp) == []


def test_job_trains_and_scores_are_queryable_afterwards(head):
    env = head["env"]
    job = subprocess.run(
        [
            BIN / "ray",
            "job",
            "submit",
            f"--address={head['dashboard']}",
            "--",
            "curriculum",
            "train",
            "--workers",
            "1",
            "--epochs",
            "4",
            "--warm-start",
            "2",
            "--cycle",
            "1",
            "--run",
            "job-run",
            "--method",
            "dihcl-greedy",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=REPO,
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "round   4/4" in job.stdout and "done: final test accuracy" in job.stdout

    # The store is detached: after the job, deploy the REST API on the cluster and ask it.
    serve = subprocess.run(
        [BIN / "curriculum", "serve", "--address", head["gcs"], "--port", str(head["serve"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert serve.returncode == 0, serve.stderr[-3000:]
    base = f"http://127.0.0.1:{head['serve']}"
    runs = {r["run"]: r for r in httpx.get(f"{base}/v1/runs", timeout=30).json()}
    assert runs["job-run"]["n"] == 1437 and runs["job-run"]["rounds"] == 4
    assert runs["job-run"]["ingested"] == 2 * 1437 + 1221 + 1038  # 2 warm rounds, 0.85 n, 0.7225 n
    top = httpx.get(f"{base}/v1/runs/job-run/top", params={"k": 5}, timeout=30).json()
    assert len(top) == 5 and top[0]["dih"] >= top[-1]["dih"] > 0

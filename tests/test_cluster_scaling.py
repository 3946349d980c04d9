"""Clusters that change size under a run: elastic Ray Train on a ray.cluster_utils.Cluster, and the fake
multi-node autoscaler adding worker nodes for a run and removing them when idle.

Each scenario owns its cluster, so it runs as a script in its own process (one driver connects to one
cluster; the suite's shared Ray instance is never touched); the scripts assert and print what they assert.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import cluster_processes, kill_cluster

pytestmark = pytest.mark.slow

CASES = Path(__file__).parent / "cases"


def run_case(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, str(CASES / script), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=480,
    )
    print(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-4000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_elastic_run_shrinks_and_grows_between_rounds(tmp_path):
    result = run_case("elastic.py", str(tmp_path))
    worlds = result["worlds"]
    print("world size per round:", worlds)
    # 2 ranks, a node lost (1 rank), a node added back (2 ranks again).
    shrink = worlds.index(1)
    assert worlds[0] == 2 and 2 in worlds[shrink:], worlds
    assert result["rounds"] == len(worlds) == 8
    assert result["ingested"] == result["sample_passes"]


def test_autoscaler_adds_nodes_for_a_run_and_removes_them_when_idle(tmp_path):
    # A short path of its own: the cluster's processes carry it, so it names exactly them.
    temp = tempfile.mkdtemp(prefix="ras", dir="/tmp")
    try:
        result = run_case("autoscale.py", str(tmp_path), env={"CURRICULUM_CLUSTER_TEMP": temp})
    finally:
        kill_cluster(temp)
        shutil.rmtree(temp, ignore_errors=True)
    assert cluster_processes(temp) == []  # the Ray client server, reparented to init, included
    print(result)
    assert result["peak_nodes"] == 3 and result["nodes_after"] == 1
    assert result["rounds"] == 4 and result["ingested"] == result["sample_passes"] > 0

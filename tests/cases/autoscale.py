"""A training run on a fake multi-node cluster that starts with no worker nodes (autoscaler v1).

`ray start --head --num-cpus=0 --autoscaling-config=...` with the ``fake_multinode`` provider (worker
nodes are extra raylets on this host); `curriculum train --workers 2` joins it as a driver and asks
for 2 one-CPU workers, so the autoscaler must add 2 nodes; after the run the idle nodes must leave.
Run as a script with a work dir (argv[1]) and a fresh, short temp dir in ``$CURRICULUM_CLUSTER_TEMP``:
every process of this cluster carries it (command line or inherited environment), which is how this
script and its caller stop exactly this cluster (`ray stop` would stop every Ray on the machine).
Prints what it asserts and ends with a ``RESULT`` JSON line.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import ray
import yaml

from scorer_service.ray.actor import NAMESPACE, get_store

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers import free_ports, kill_cluster  # noqa: E402

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
RUN = "autoscale"
EPOCHS = 4
IDLE_REMOVAL_TIMEOUT_S = 90


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


def main(temp: str, work: str) -> None:
    gcs_port, client, agent, metrics, dashboard = free_ports(5)
    # The fake provider starts worker raylets against provider.gcs_address (default: this host's
    # 6379), so the config must name the head's port; the same IP the provider itself resolves.
    gcs = f"{ray.util.get_node_ip_address()}:{gcs_port}"
    config = yaml.safe_load((Path(__file__).parent / "fake_cluster.yaml").read_text())
    config["provider"]["gcs_address"] = gcs
    config_path = Path(work, "fake_cluster.yaml")
    config_path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
    }
    env.pop("RAY_ADDRESS", None)
    t0 = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f} s] {line}", flush=True)

    subprocess.run(
        [
            BIN / "ray",
            "start",
            "--head",
            f"--port={gcs_port}",
            "--num-cpus=0",
            "--object-store-memory=100000000",
            "--include-dashboard=false",
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}",
            f"--metrics-export-port={metrics}",
            f"--autoscaling-config={config_path}",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )
    ray.init(address=gcs, namespace=NAMESPACE, log_to_driver=False)
    at_start = len(alive_nodes())
    log(f"head started at {gcs}; alive nodes: {at_start}")
    assert at_start == 1, at_start

    peak = {"nodes": at_start, "cpus": 0.0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            nodes = alive_nodes()
            if len(nodes) > peak["nodes"]:
                log(f"alive nodes: {len(nodes)}")
            peak["nodes"] = max(peak["nodes"], len(nodes))
            peak["cpus"] = max(peak["cpus"], sum(n["Resources"].get("CPU", 0.0) for n in nodes))
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    train = subprocess.run(
        [
            BIN / "curriculum",
            "train",
            "--workers",
            "2",
            "--epochs",
            str(EPOCHS),
            "--warm-start",
            "1",
            "--cycle",
            "1",
            "--run",
            RUN,
            "--storage-path",
            str(Path(work, "ckpt")),
            "--snapshot-dir",
            str(Path(work, "snapshots")),
        ],
        env={**env, "RAY_ADDRESS": gcs},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    stop.set()
    watcher.join()
    print(train.stdout, flush=True)
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    log(f"training done; peak alive nodes {peak['nodes']}, peak CPUs {peak['cpus']}")
    assert peak["nodes"] == 3 and peak["cpus"] == 2.0, peak
    assert f"round   {EPOCHS}/{EPOCHS}" in train.stdout

    store = get_store(RUN)
    info, rounds = ray.get([store.info.remote(), store.round_summaries.remote()])
    passes = sum(r.size for r in rounds)
    printed = int(re.search(r"(\d+) sample passes", train.stdout).group(1))
    log(
        f"store: rounds completed {info.rounds_completed}, world sizes "
        f"{[r.world_size for r in rounds]}, ingested {info.ingested}, sample passes {passes} "
        f"(driver printed {printed})"
    )
    assert info.rounds_completed == EPOCHS and len(rounds) == EPOCHS, info
    assert all(r.world_size == 2 for r in rounds), rounds
    assert info.ingested == passes == printed, (info, passes, printed)

    idle_from = time.monotonic()
    while len(alive_nodes()) > 1 and time.monotonic() - idle_from < IDLE_REMOVAL_TIMEOUT_S:
        time.sleep(0.5)
    left = len(alive_nodes())
    log(f"alive nodes {time.monotonic() - idle_from:.1f} s after the run: {left}")
    assert left == 1, f"idle worker nodes still alive after {IDLE_REMOVAL_TIMEOUT_S} s: {left - 1}"
    # The detached store outlived the run on the head, which no scale-down touches.
    assert ray.get(store.info.remote()).ingested == info.ingested
    result = {
        "peak_nodes": peak["nodes"],
        "nodes_after": left,
        "idle_removal_s": round(time.monotonic() - idle_from, 1),
        "rounds": info.rounds_completed,
        "ingested": info.ingested,
        "sample_passes": passes,
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    temp_dir = os.environ["CURRICULUM_CLUSTER_TEMP"]
    try:
        main(temp_dir, sys.argv[1])
    finally:
        ray.shutdown()
        print(f"killed {len(kill_cluster(temp_dir))} processes of the cluster", flush=True)

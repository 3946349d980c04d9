"""Train on a 3-node ray.cluster_utils.Cluster and SIGKILL the raylet of a worker node mid-run.

Run as a script (it owns its cluster); prints what happened and exits 0 when the run completed.
"""

import os
import sys
import threading
import time

import ray
from ray.cluster_utils import Cluster

from scorer_service.ray.actor import NAMESPACE, get_store
from trainers.driver import run_training
from trainers.train_config import TrainConfig


def start_cluster() -> Cluster:
    """A 0-CPU head with health checks tuned to notice a killed node in about 1.5 s."""
    return Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": 100 << 20,
            "_system_config": {
                "health_check_period_ms": 500,
                "health_check_timeout_ms": 500,
                "health_check_failure_threshold": 3,
            },
        },
    )


def main(tmp: str) -> None:
    cluster = start_cluster()
    nodes = [cluster.add_node(num_cpus=1, object_store_memory=100 << 20) for _ in range(3)]
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    cluster.wait_for_nodes()
    cfg = TrainConfig.create(
        run="node-loss",
        epochs=6,
        warm_start=2,
        cycle_length=2,
        workers=2,
        storage_path=os.path.join(tmp, "ckpt"),
    )

    def remove_a_node() -> None:
        while True:
            try:
                if ray.get(get_store("node-loss").info.remote(), timeout=10).rounds_completed >= 2:
                    break
            except Exception:
                pass
            time.sleep(0.1)
        cluster.remove_node(nodes[0], allow_graceful=False)
        print("node removed while training", flush=True)

    thread = threading.Thread(target=remove_a_node, daemon=True)
    thread.start()
    summary = run_training(cfg, max_failures=3, out=lambda _: None)
    thread.join(timeout=60)
    info = ray.get(get_store("node-loss").info.remote())
    print(
        f"rounds {summary['rounds']} ingested {info.ingested} passes {summary['sample_passes']}",
        flush=True,
    )
    assert info.ingested == summary["sample_passes"], info
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])

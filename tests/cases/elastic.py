"""Elastic training on a ray.cluster_utils.Cluster: the world size shrinks and grows between rounds.

Two one-CPU worker nodes and ``workers=(1, 2)``: training starts with 2 ranks; a worker
node is SIGKILLed mid-run (Ray Train restarts from its last checkpoint with 1 rank), then a node is
added back (the elastic resize monitor restarts it with 2 ranks). Run as a script (it owns its
cluster); asserts that every round's shards and the store's counters stayed consistent, prints what
it asserts, and ends with a ``RESULT`` JSON line.
"""

import functools
import json
import os
import sys
import threading
import time
from pathlib import Path

# Ray Train's controller polls the workers every 2 s, and a worker's report() waits for that poll:
# a shorter poll keeps rounds and failure detection quick. After a node dies the elastic policy may
# still count it for a moment and wait for a 2-rank placement group; 60 s is the default wait.
# Set before the cluster starts, so every raylet and Ray Train actor inherits them.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "10")

import numpy as np  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402
from ray.train import ScalingConfig  # noqa: E402

import trainers.driver  # noqa: E402
from scorer_service.ray.actor import NAMESPACE, create_store, get_store  # noqa: E402
from scorer_service.store import HardnessStore  # noqa: E402
from trainers.datasets import load_dataset  # noqa: E402
from trainers.train_config import TrainConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_loss import start_cluster  # noqa: E402

RUN = "elastic"
EPOCHS = 8
# Ray Train considers growing a healthy worker group every elastic_resize_monitor_interval_s (60 s by
# default; no environment variable sets it). run_training builds its ScalingConfig through
# trainers.driver's global name, so a partial there shortens it for this process only.
RESIZE_INTERVAL_S = 1.0
NODE = {"num_cpus": 1, "object_store_memory": 100 << 20}


class GatedStore(HardnessStore):
    """Holds the 1-rank phase open until the test has added a node back.

    1-rank rounds are fast, so without a gate the run may end before the new node has joined and
    Ray Train has resized. Once a round has completed with 1 rank, the request for the next 1-rank
    round waits for ``gate/open``, announcing the wait in ``gate/waiting`` (the round it holds).
    """

    gate = ""

    def subset(self, round_: int, rank: int, world_size: int) -> np.ndarray:
        if world_size == 1 and not self.journal.replaying and round_ not in self.rounds:
            done_by_one = [r for r, rec in self.rounds.items() if rec.world_size == 1 and rec.metrics]
            if done_by_one:
                Path(self.gate, "waiting").write_text(str(round_))
                while not Path(self.gate, "open").exists():
                    time.sleep(0.05)
        return super().subset(round_, rank, world_size)


def node_of_store() -> str:
    store = get_store(RUN)
    return ray.get(store.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()))


def registered_round(storage: str) -> int:
    """The round of the newest checkpoint Ray Train has registered (what a restart resumes from).

    A report is registered only once the controller has collected it from every rank; a worker
    group that fails before that restarts without a checkpoint.
    """
    for path in Path(storage).glob(f"{RUN}-*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(path.read_text()).get("latest_checkpoint_result") or {}
            return int(latest["metrics"]["round"])
        except (ValueError, KeyError, TypeError):
            pass
    return -1


def two_rank_group_placed() -> bool:
    groups = ray.util.placement_group_table().values()
    return any(len(g["bundles"]) == 2 and g["state"] == "CREATED" for g in groups)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def main(cluster: Cluster, tmp: str) -> None:
    nodes = [cluster.add_node(**NODE) for _ in range(2)]
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    cluster.wait_for_nodes()
    trainers.driver.ScalingConfig = functools.partial(
        ScalingConfig, elastic_resize_monitor_interval_s=RESIZE_INTERVAL_S
    )
    storage = os.path.join(tmp, "ckpt")
    cfg = trainers.driver.prepare(
        TrainConfig.create(
            run=RUN,
            epochs=EPOCHS,
            warm_start=1,
            cycle_length=2,
            workers=(1, 2),
            seed=3,
            snapshot_dir=os.path.join(tmp, "snapshots"),
            storage_path=storage,
        )
    )
    gate = Path(tmp, "gate")
    gate.mkdir()
    GatedStore.gate = str(gate)
    data = load_dataset(cfg.dataset, cfg.seed)
    store = create_store(cfg.store_config(data.n, data.num_classes), store_cls=GatedStore)
    t0 = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f} s] {line}", flush=True)

    outcome: dict = {}

    def train() -> None:
        try:
            outcome["summary"] = trainers.driver.run_training(cfg, store=store, max_failures=3, out=log)
        except BaseException as e:
            outcome["error"] = e

    # Training runs in a thread because Cluster.add_node installs signal handlers (main thread only).
    thread = threading.Thread(target=train, daemon=True)
    thread.start()

    # Shrink once a checkpoint is registered: the restart then resumes from it and rank 0 rewinds
    # the store to that round.
    wait_for(lambda: registered_round(storage) >= 1, 150, "a registered checkpoint of round 1")
    victim = next(n for n in nodes if n.node_id != node_of_store())
    cluster.remove_node(victim, allow_graceful=False)
    log(f"node removed; checkpoint of round {registered_round(storage)} registered")

    # Grow once a 1-rank round is checkpointed (the store holds the next one), so the resize keeps it.
    wait_for(lambda: Path(gate, "waiting").exists(), 150, "a completed round trained by 1 rank")
    held = int(Path(gate, "waiting").read_text())
    wait_for(lambda: registered_round(storage) >= held - 1, 30, f"the checkpoint of round {held - 1}")
    cluster.add_node(**NODE)
    log(f"node added; the store holds round {held}")
    try:
        # Ray Train shuts the 1-rank group down before it places the 2-rank one.
        wait_for(two_rank_group_placed, 90, "Ray Train to place a 2-rank worker group")
        log("2-rank worker group placed")
    finally:
        Path(gate, "open").touch()
    thread.join(timeout=300)
    if thread.is_alive():
        raise TimeoutError("training did not finish within 300 s of the resize")
    if "error" in outcome:
        raise outcome["error"]
    summary = outcome["summary"]

    n = data.n
    info, rounds = ray.get([store.info.remote(), store.round_summaries.remote()])
    worlds = [r.world_size for r in rounds]
    log(f"world size per round: {worlds}")
    assert summary["rounds"] == EPOCHS and len(rounds) == EPOCHS, (summary, len(rounds))
    assert 1 in worlds and 2 in worlds, worlds
    assert worlds.index(1) < len(worlds) - 1 - worlds[::-1].index(2), f"no growth after the shrink: {worlds}"

    seen = ray.get(store.column.remote("seen"))
    expected = np.zeros(n, dtype=np.int64)
    for r in rounds:
        world = r.world_size
        ids = np.asarray(ray.get(store.round_subset.remote(r.round, 0, n)).ids)
        shards = [ray.get(store.subset.remote(r.round, rank, world)) for rank in range(world)]
        lengths = sorted({len(s) for s in shards})
        union = np.concatenate(shards)
        print(
            f"round {r.round:>2}: world {world}, subset {len(ids)}, shard lengths {lengths}, "
            f"{len(np.unique(union))} distinct ids in {len(union)} shard slots, ingested {r.ingested}",
            flush=True,
        )
        assert len(lengths) == 1 and len(ids) == r.size == r.ingested, (r, lengths, len(ids))
        # Disjoint (no id twice across the shards) and covering (the union is exactly the subset).
        assert len(np.unique(union)) == len(union) == len(ids), r.round
        assert set(union.tolist()) == set(ids.tolist()), r.round
        expected[ids] += 1
    wrong = int((seen != expected).sum())
    print(
        f"seen == number of rounds selecting the sample for {n - wrong}/{n} samples; "
        f"ingested {info.ingested}, sample passes {summary['sample_passes']}",
        flush=True,
    )
    assert wrong == 0, wrong
    assert info.ingested == expected.sum() == summary["sample_passes"], info
    print("RESULT " + json.dumps({"worlds": worlds, **summary}), flush=True)
    ray.kill(store)


if __name__ == "__main__":
    cluster = start_cluster()
    try:
        main(cluster, sys.argv[1])
    finally:
        ray.shutdown()
        cluster.shutdown()

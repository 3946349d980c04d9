"""Ingest throughput of the hardness-store actor, next to a null actor that does no work.

Writers are Ray actors (``num_cpus=1``, like a Ray Train worker) that build their byproduct
batches once and then stream them with ``curriculum.recorder.Recorder``'s send pattern:
fire-and-forget ``ingest`` calls, at most ``--window`` in flight, then a wait for all. The same
batches go to a fresh null actor (same ``ingest`` signature, no work) and to a fresh store actor,
alternately ``--repeat`` times, so the ratio of the two rates is the share of the Ray call path's
throughput that the store's own work leaves. Before that, the in-process rate: the same batches
applied by a ``HardnessStore`` in this process, into a store that has seen every sample.

    python -m trainers.benchmarks.ingest [--quick] [--repeat N] [--profile] [--json PATH]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

# Before ``import ray``: the token file and usage reporting are not wanted for a throwaway cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import ray  # noqa: E402

from scorer_service.config import StoreConfig  # noqa: E402
from scorer_service.core.wire.batch import Ingested  # noqa: E402
from scorer_service.ray.actor import actor_class, create_store  # noqa: E402
from scorer_service.store import HardnessStore  # noqa: E402
from trainers.benchmarks.harness import start_local_ray  # noqa: E402

N = 1_280_000  # an ImageNet-sized store
STEP_SAMPLES = 256  # per rank and optimizer step; divides N // 2, so both ranks share whole steps
BATCH_SIZES = (4096, 65536)
WRITER_COUNTS = (1, 2)
WINDOW = 8  # the Recorder's default max_in_flight
BASE_LR = 0.1
NAMESPACE = "bench-ingest"


def lr_at(steps: np.ndarray, total_steps: int) -> np.ndarray:
    """Cosine decay with a floor: a pure function of the step, so every rank reports identical rates
    (the store keeps one log shared by all writers and rejects disagreement)."""
    return BASE_LR * (0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * steps / total_steps)))


def build_batches(
    rank: int, world: int, batch_size: int, epochs: int, n: int = N, seed: int = 0
) -> list[dict[str, Any]]:
    """One rank's byproduct batches for ``epochs`` passes over its shard of ``[0, n)``.

    Ranks own disjoint id ranges and run the same global steps (DDP-style), so the store sees
    each step from every rank with the same learning rate and no step is skipped. A batch never
    crosses an epoch, as the Recorder flushes on a round change; the last batch of an epoch is short.
    """
    shard = n // world
    lo = rank * shard
    steps_per_epoch = shard // STEP_SAMPLES
    total_steps = steps_per_epoch * epochs
    rng = np.random.default_rng([seed, rank, world])
    batches: list[dict[str, Any]] = []
    writer = f"bench-rank{rank}"
    for epoch in range(epochs):
        ids = lo + rng.permutation(shard).astype(np.int64)
        step = epoch * steps_per_epoch + np.arange(shard, dtype=np.int64) // STEP_SAMPLES
        lr = lr_at(step, total_steps)
        # Losses shrink over training and correctness follows the loss, as a classifier's would.
        loss = (rng.exponential(2.5, shard) * (1.0 - 0.8 * step / total_steps)).astype(np.float32)
        correct = loss < 1.0
        for a in range(0, shard, batch_size):
            b = min(a + batch_size, shard)
            # Copies, not views: each call then owns one compact buffer, as the Recorder's concat gives.
            batches.append(
                {
                    "sample_id": ids[a:b].copy(),
                    "loss": loss[a:b].copy(),
                    "correct": correct[a:b].copy(),
                    "step": step[a:b].copy(),
                    "lr": lr[a:b].copy(),
                    "round": epoch,
                    "rank": rank,
                    "writer": writer,
                    "seq": len(batches),
                }
            )
    return batches


class NullStore:
    """Same ``ingest`` signature as the store, no work: what is left is Ray's call path."""

    def ready(self) -> bool:
        return True

    def ingest(self, data: dict[str, Any]) -> Ingested:
        # A reply of the store's type, so both sides serialize the same result.
        return Ingested(applied=0, duplicate=False)


class Writer:
    """One trainer process: holds prepared batches and streams them to a target actor."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.batches: list[dict[str, Any]] = []

    def prepare(self, world: int, batch_size: int, epochs: int) -> int:
        self.batches = build_batches(self.rank, world, batch_size, epochs)
        return sum(len(b["sample_id"]) for b in self.batches)

    def stream(self, target: ray.actor.ActorHandle, start_at: float, window: int) -> tuple[float, float, int]:
        """Send every batch with a bounded window; returns (start, end, samples), wall-clock."""
        # Start together with the other writers, so their streams overlap for the whole run.
        while (delay := start_at - time.time()) > 0:
            time.sleep(delay)
        t0 = time.time()
        in_flight: list[ray.ObjectRef] = []
        sent = 0
        for batch in self.batches:
            if len(in_flight) >= window:
                ready, in_flight = ray.wait(in_flight, num_returns=len(in_flight) - window + 1)
                ray.get(ready)  # surfaces a rejected batch here, as the Recorder does
            in_flight.append(target.ingest.remote(batch))
            sent += len(batch["sample_id"])
        ray.get(in_flight)
        return t0, time.time(), sent


# With the store actor's options (scorer_service.ray.actor): no CPU slot, retried calls, "ingest" and
# "query" concurrency groups (ingest calls on their own threads); so both run the same call path.
NullStoreActor = actor_class(NullStore)
WriterActor = ray.remote(num_cpus=1)(Writer)


@dataclass
class Row:
    batch: int
    writers: int
    samples: int  # per run
    store_s: float  # medians over the repeats
    null_s: float
    store_rate: float
    null_rate: float
    ratio: float
    apply_rate: float
    ingested: int  # by the last store run
    repeats: int = 1
    # The store actor's CPU seconds per million samples: unlike the rates, barely moved by other
    # load on a shared box (it counts the store's own work, not its waits for a core).
    cpu_s_per_m: float = float("nan")


@dataclass
class InProcessRow:
    batch: int
    batches: int
    samples: int
    seconds: float
    rate: float


def in_process(batch_size: int, passes: int, profile: bool = False) -> tuple[InProcessRow, str]:
    """``HardnessStore.ingest`` in this process (no Ray): one pass so the store has seen every sample,
    then ``passes`` timed passes; with ``profile``, cProfile's top functions of the last one."""
    batches = build_batches(0, 1, batch_size, passes + 1)
    per_pass = len(batches) // (passes + 1)
    store = HardnessStore(StoreConfig(n=N, epochs=passes + 2, run="bench-ingest-in-process"))
    for b in batches[:per_pass]:
        store.ingest(b)
    timed = batches[per_pass:]
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    for i, b in enumerate(timed):
        if profiler is not None and i == len(timed) - per_pass:
            profiler.enable()
        store.ingest(b)
    seconds = time.perf_counter() - t0
    ingested = store.ingestor.counters["ingested"]
    if ingested != N * (passes + 1):
        raise RuntimeError(f"in-process store ingested {ingested} of {N * (passes + 1)}")
    text = ""
    if profiler is not None:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
        text = out.getvalue()
    samples = N * passes
    return InProcessRow(batch_size, len(timed), samples, seconds, samples / seconds), text


def _pid(_instance: Any) -> int:
    return os.getpid()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(
    writers: list[ray.actor.ActorHandle], target: ray.actor.ActorHandle, window: int
) -> tuple[float, int]:
    start_at = time.time() + 0.5  # time for every writer to receive its call before the start
    results = ray.get([w.stream.remote(target, start_at, window) for w in writers])
    seconds = max(r[1] for r in results) - min(r[0] for r in results)
    return seconds, sum(r[2] for r in results)


def measure(
    writers: list[ray.actor.ActorHandle], batch_size: int, epochs: int, window: int, run: str, repeat: int
) -> Row:
    world = len(writers)
    expected = sum(ray.get([w.prepare.remote(world, batch_size, epochs) for w in writers]))
    null_s, store_s, apply_rates, cpu = [], [], [], []
    for _ in range(repeat):
        null = NullStoreActor.remote()
        ray.get(null.ready.remote())
        seconds, null_sent = _run(writers, null, window)
        null_s.append(seconds)
        ray.kill(null, no_restart=True)

        # A fresh store per run: every one starts from unseen samples and an empty lr log.
        store = create_store(StoreConfig(n=N, epochs=max(epochs, 1), run=run))
        try:
            pid = ray.get(store.__ray_call__.remote(_pid))
            before = cpu_seconds(pid)
            seconds, sent = _run(writers, store, window)
            cpu.append(1e6 * (cpu_seconds(pid) - before) / sent)
            store_s.append(seconds)
            info = ray.get(store.info.remote())
        finally:
            ray.kill(store, no_restart=True)
        apply_rates.append(float(info.ingest_samples_per_s))
        if not expected == null_sent == sent:
            raise RuntimeError(f"writers sent {sent} (null {null_sent}) samples, expected {expected}")
        print(
            f"  batch {batch_size:>6} writers {world}: null {sent / null_s[-1]:,.0f}/s, store "
            f"{sent / store_s[-1]:,.0f}/s; store ingested {info.ingested} of {sent} sent"
            f" (rejected {info.rejected}, duplicates {info.duplicates})",
            flush=True,
        )
    null_med, store_med = statistics.median(null_s), statistics.median(store_s)
    return Row(
        batch=batch_size,
        writers=world,
        samples=expected,
        store_s=store_med,
        null_s=null_med,
        store_rate=expected / store_med,
        null_rate=expected / null_med,
        ratio=null_med / store_med,
        apply_rate=statistics.median(apply_rates),
        cpu_s_per_m=statistics.median(cpu),
        ingested=int(info.ingested),
        repeats=repeat,
    )


def format_table(rows: list[Row]) -> str:
    head = (
        "| batch | writers | samples per run | store samples/s | null samples/s | store/null "
        "| store apply samples/s (in actor) | store CPU s per M samples |"
    )
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.batch} | {r.writers} | {r.samples:,} | {r.store_rate:,.0f} | {r.null_rate:,.0f} "
            f"| {r.ratio:.2f} | {r.apply_rate:,.0f} | {r.cpu_s_per_m:.3f} |"
        )
    return "\n".join(lines)


def format_in_process(rows: list[InProcessRow]) -> str:
    lines = ["| batch | batches | samples | seconds | samples/s (in process) |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.batch} | {r.batches} | {r.samples:,} | {r.seconds:.3f} | {r.rate:,.0f} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "ray": ray.__version__,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainers.benchmarks.ingest", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="one pass over the store per run instead of four")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--window", type=int, default=WINDOW, help="calls in flight per writer")
    p.add_argument("--repeat", type=int, help="null and store runs per configuration (default 3, --quick 1)")
    p.add_argument(
        "--profile", action="store_true", help="print cProfile's top functions of the in-process apply"
    )
    args = p.parse_args(argv)
    # The store sees N samples per pass, split over the writers: totals match across writer counts.
    epochs = 1 if args.quick else 4
    repeat = args.repeat or (1 if args.quick else 3)

    print(f"n = {N:,}, {epochs} pass(es) per run, {repeat} run(s) each, window {args.window}, {machine()}")
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    local: list[InProcessRow] = []
    for batch_size in BATCH_SIZES:
        row, profile = in_process(batch_size, epochs, args.profile)
        local.append(row)
        print(f"  in process, batch {batch_size}: {row.rate:,.0f} samples/s", flush=True)
        if profile:
            print(profile, flush=True)

    if __name__ != "__main__":
        # Imported (not run with -m): workers cannot import this package, so ship its classes by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    start_local_ray(NAMESPACE, num_cpus=2)
    rows: list[Row] = []
    try:
        writers = [WriterActor.remote(rank) for rank in range(max(WRITER_COUNTS))]
        for batch_size in BATCH_SIZES:
            for world in WRITER_COUNTS:
                run = f"bench-ingest-{os.getpid()}-{batch_size}-{world}"
                rows.append(measure(writers[:world], batch_size, epochs, args.window, run, repeat))
    finally:
        ray.shutdown()

    load = os.getloadavg()
    print(format_in_process(local))
    print(format_table(rows))
    print(f"load average at the end: {load}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": machine(),
                    "n": N,
                    "epochs": epochs,
                    "load_avg_end": load,
                    "in_process": [asdict(r) for r in local],
                    "rows": [asdict(r) for r in rows],
                },
                f,
                indent=2,
            )
    bad = [r for r in rows if r.ingested != r.samples]
    if bad:
        raise SystemExit(
            "store ingested count differs from samples sent: "
            + ", ".join(f"batch {r.batch} writers {r.writers}: {r.ingested} != {r.samples}" for r in bad)
        )
    print(f"ok: store ingested == samples sent in all {len(rows)} configurations")
    return 0


if __name__ == "__main__":
    sys.exit(main())

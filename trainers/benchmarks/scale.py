"""A store split into shards at 10 M and 50 M samples: ingest, selection, memory, and a projection.

For each size n and shard count S (S = 8 only where the machine's free memory allows), one store
of S shard actors (S = 1: one actor, the shard in the coordinator's process), kept in memory (no
write-ahead log: the soak suite measures what durability costs):

- ingest: ``--writers`` Ray actors (trainer ranks: disjoint id ranges, the same global steps, 256
  samples per rank and step) each send one pass over their ids in batches of ``--batch`` through the
  trainers' endpoint (checked, split by shard, one part per shard, at most 8 sends in flight); the
  rate is samples over wall time, and each shard process's CPU time (``/proc``) over the samples it
  applied gives its cost per million samples;
- selection: ``--repeats`` (3) rounds each, interleaved, of top-k (DIHCL-Greedy), weighted sampling
  (DIHCL-Rand and DIHCL-Exp, exponential-race keys) and uniform sampling, half of n each (the median
  is reported and every one is in the JSON; a store's first also loads the compiled code and
  allocates the temporaries a shard keeps), over the same state, by the selection protocol against
  the shard actors (the time a trainer's first ``subset`` call waits for, without fetching its
  ids); diversity (GreeDi, dense facility location on 16-d sketches) at 10 M only;
- memory: each shard process's resident size after one selection of each method (the round records
  and the selection's temporaries it keeps for the next round included), next to its state's size.

The projection to 5 B samples on 100 and 200 shards uses the per-shard figures measured here.

    python -m trainers.benchmarks.scale [--quick] [--sizes N ...] [--shards S ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from typing import Any

# Before ``import ray``: the token file and usage reporting are not wanted for a throwaway cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import ray  # noqa: E402

from scorer_service.config import StoreConfig  # noqa: E402
from scorer_service.config.components import bounds, planner  # noqa: E402
from scorer_service.ray.actor import NAMESPACE, create_store, delete_store, get_shards  # noqa: E402
from scorer_service.ray.shards import RayShards  # noqa: E402
from scorer_service.sizing import bytes_per_sample  # noqa: E402
from scorer_service.store import HardnessStore  # noqa: E402
from trainers.benchmarks.harness import machine, start_local_ray  # noqa: E402

STEP_SAMPLES = 256
SELECTORS = ("dihcl-greedy", "dihcl-rand", "dihcl-exp", "random")
WINDOW = 8
REPEATS = 3  # selections per method by default, interleaved; the median is reported
PROCESS_BYTES = 400 << 20  # a shard actor's process before its state (Ray worker, numpy, numba)


def lr_at(step: int) -> float:
    return 0.1 * (0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * min(step, 100_000) / 100_000)))


@ray.remote(num_cpus=0)
class Writer:
    """One trainer rank: a pass over its id range, sent as the recorder sends (window of 8)."""

    def __init__(self, run: str, rank: int, world: int, n: int, batch: int, dim: int) -> None:
        from curriculum._internal.ray_endpoint import ActorEndpoint

        self.endpoint = ActorEndpoint(run)
        lo, hi = rank * n // world, (rank + 1) * n // world
        rng = np.random.default_rng(rank)
        self.ids = lo + rng.permutation(hi - lo)
        self.loss = rng.exponential(2.0, hi - lo).astype(np.float32)
        self.embedding = rng.normal(size=(hi - lo, dim)).astype(np.float16) if dim else None
        self.rank, self.batch = rank, batch

    def stream(self) -> tuple[float, int, float]:
        """Wall seconds, samples sent and this process's CPU seconds for the pass."""
        cpu0, t0, pending, sent = time.process_time(), time.perf_counter(), [], 0
        for a in range(0, len(self.ids), self.batch):
            b = min(a + self.batch, len(self.ids))
            first_step = a // STEP_SAMPLES
            step = first_step + np.arange(b - a, dtype=np.int64) // STEP_SAMPLES
            lrs = np.array([lr_at(int(s)) for s in range(first_step, int(step[-1]) + 1)])
            data = {
                "sample_id": self.ids[a:b],
                "loss": self.loss[a:b],
                "correct": self.loss[a:b] < 1.0,
                "step": step,
                "lr": lrs[step - first_step],
                "round": 0,
                "rank": self.rank,
                "writer": f"scale-{self.rank}",
                "seq": a // self.batch,
            }
            if self.embedding is not None:
                data["embedding"] = self.embedding[a:b]
            while len(pending) >= WINDOW:
                self.endpoint.ingest_result(pending.pop(0))
            pending.append(self.endpoint.send_ingest(data))
            sent += b - a
        for p in pending:
            self.endpoint.ingest_result(p)
        return time.perf_counter() - t0, sent, time.process_time() - cpu0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


def _pids(run: str, shards: int) -> list[int]:
    handles = (
        get_shards(run, shards)
        if shards > 1
        else [ray.get_actor(f"hardness-store:{run}", namespace=NAMESPACE)]
    )
    return [ray.get(h.__ray_call__.remote(lambda self: os.getpid())) for h in handles]


def measure(
    n: int, shards: int, writers: int, batch: int, diversity: bool, repeats: int = REPEATS
) -> dict[str, Any]:
    """One store of ``shards`` shards at ``n`` samples: ingest, selections, memory (see the module doc)."""
    run = f"scale-{n}-{shards}{'-div' if diversity else ''}"
    cfg = StoreConfig.create(
        n=n, epochs=2 + repeats * len(SELECTORS), run=run, method="dihcl-greedy", warm_start=1,
        cycle_length=1,
        budget_start=0.02 if diversity else 0.5, budget_factor=1.0, budget_floor=0.01, store_shards=shards,
        diversity="fl" if diversity else "none", embedding_dim=16 if diversity else 0, seed=0,
    )  # fmt: skip
    store = create_store(cfg)
    pids = _pids(run, shards)
    ray.get(store.prepare.remote(0, writers))
    actors = [Writer.remote(run, r, writers, n, batch, cfg.byproducts.embedding_dim) for r in range(writers)]
    ray.get([w.__ray_ready__.remote() for w in actors])
    cpu0 = [_cpu_seconds(p) for p in pids]
    t0 = time.perf_counter()
    streamed = ray.get([w.stream.remote() for w in actors])
    wall = time.perf_counter() - t0
    cpu = [_cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    info = ray.get(store.info.remote())
    assert info.ingested == n, (info.ingested, n)
    parts = [s.n for s in info.shards]
    row: dict[str, Any] = {
        "n": n,
        "shards": shards,
        "diversity": diversity,
        "writers": writers,
        "batch": batch,
        "ingest_s": wall,
        "ingest_samples_per_s": n / wall,
        "shard_cpu_s_per_million": [c / (m / 1e6) for c, m in zip(cpu, parts, strict=True)],
        "writer_cpu_s_per_million": sum(s[2] for s in streamed) / (n / 1e6),
    }
    del actors
    handles = get_shards(run, shards) if shards > 1 else None
    methods = ("dihcl-greedy",) if diversity else SELECTORS
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    order = [m for _ in range(repeats) for m in methods]  # interleaved: the load moves for all alike
    for round_, method in enumerate(order, start=1):
        # The protocol driven from here over the shard actors: the coordinator's work for any method.
        group = RayShards(handles, bounds(cfg)) if handles else None
        coordinator = HardnessStore(replace(cfg, method=method), shards=group) if group else None
        cpu0 = [_cpu_seconds(p) for p in pids]
        t0 = time.perf_counter()
        if coordinator is not None:
            coordinator.prepare(round_, 8)
        else:  # one shard lives in the store actor: ask it, with its own method for each round
            ray.get(store.__ray_call__.remote(_select_as, method, round_))
        seconds = time.perf_counter() - t0
        summary = ray.get(store.round_summaries.remote())[round_]
        cpu = [_cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        runs[method].append({"seconds": seconds, "cpu": cpu, "summary": summary})
        if round_ == len(methods):  # one round of each method: the memory a run of any one of them needs
            rss = [_rss_bytes(p) for p in pids]
    select = {}
    for method, reps in runs.items():
        select[method] = {
            "seconds": float(np.median([r["seconds"] for r in reps])),
            "first_seconds": reps[0]["seconds"],
            "all_seconds": [r["seconds"] for r in reps],
            "selected": reps[-1]["summary"].size,
            "shard_cpu_s": np.median([r["cpu"] for r in reps], axis=0).tolist(),
            "details": reps[-1]["summary"].details,
        }
    row["select"] = select
    row["rss_bytes"] = rss
    row["state_bytes"] = [m * bytes_per_sample(cfg) for m in parts]
    delete_store(run)
    _wait_gone(pids)  # the next store's memory check must not count this one's
    return row


def _wait_gone(pids: list[int], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.2)


def _select_as(store: HardnessStore, method: str, round_: int) -> None:
    """Inside a one-shard store actor: select ``round_`` with ``method``'s keys (same state, same shard)."""
    saved = store.planner
    store.planner = planner(replace(store.config, method=method))
    try:
        store.prepare(round_, 8)
    finally:
        store.planner = saved


def part_cost(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """A shard's ingest CPU per batch part as ``a + b * samples``, least squares over the largest size's
    stores of several shards: every batch reaches every shard, so ``a`` (per call: Ray, validation, the
    learning-rate table) is paid S times per batch, and ``b`` per sample once."""
    n = max(r["n"] for r in rows)
    points = []
    for r in rows:
        if r["n"] != n or r["shards"] < 2 or r["diversity"]:
            continue
        batches = -(-r["n"] // r["writers"] // r["batch"]) * r["writers"]
        per_part = float(np.median(r["shard_cpu_s_per_million"])) * r["n"] / r["shards"] / 1e6 / batches
        points.append((r["batch"] / r["shards"], per_part))
    x, y = np.array(points).T
    b, a = np.polyfit(x, y, 1) if len(points) > 1 else (0.0, float(y[0]))
    return float(max(a, 0.0)), float(max(b, 0.0))


def projection(rows: list[dict[str, Any]], total: int = 5_000_000_000) -> list[dict[str, Any]]:
    """5 B samples on 100 and 200 shards, each shard with a core of its own, from the largest measured
    stores' per-shard figures: state bytes per sample; ingest from the per-part cost (:func:`part_cost`)
    for batches of 65,536 and of 1 M samples (a shard applies one part of every batch, so the run takes
    ``batch / (a + b * batch / S)`` samples per second); selection CPU per million samples per shard
    (the coordinator's round trips come on top: see BENCHMARKS.md)."""
    big = max(
        (r for r in rows if r["shards"] > 1 and not r["diversity"]), key=lambda r: (r["n"], r["shards"])
    )
    per_sample = big["state_bytes"][0] / (big["n"] / big["shards"])
    a, b = part_cost(rows)
    out = []
    for shards in (100, 200):
        per_shard = total / shards
        sel = {}
        for method, s in big["select"].items():
            cpu_per_million = max(s["shard_cpu_s"]) / (big["n"] / big["shards"] / 1e6)
            sel[method] = cpu_per_million * per_shard / 1e6
        out.append(
            {
                "samples": total,
                "shards": shards,
                "samples_per_shard": per_shard,
                "state_gib_per_shard": per_sample * per_shard / 2**30,
                "part_cost_ms": [1e3 * a, 1e6 * b],
                "ingest_samples_per_s": {
                    str(batch): batch / (a + b * batch / shards) for batch in (65_536, 1 << 20)
                },
                "shard_select_s": sel,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 M and 2 M samples, a smoke run")
    p.add_argument("--sizes", type=int, nargs="*", default=None)
    p.add_argument("--shards", type=int, nargs="*", default=[1, 2, 4, 8])
    p.add_argument("--writers", type=int, default=2)
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--repeats", type=int, default=REPEATS, help="selections per method (median reported)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    sizes = args.sizes or ([1_000_000, 2_000_000] if args.quick else [10_000_000, 50_000_000])
    start_local_ray(NAMESPACE)
    rows, skipped = [], []
    for n in sizes:
        for shards in args.shards:
            need = n * 100 * 2.2 + shards * PROCESS_BYTES
            if need > 0.8 * _available_bytes():
                skipped.append({"n": n, "shards": shards, "why": f"needs ~{need / 2**30:.1f} GiB"})
                print(f"n={n:>11,} S={shards}: skipped, needs ~{need / 2**30:.1f} GiB", file=sys.stderr)
                continue
            row = measure(n, shards, args.writers, args.batch, diversity=False, repeats=args.repeats)
            rows.append(row)
            _print(row)
        if n == min(sizes) and n <= 10_000_000:  # GreeDi on dense blocks: one size is enough
            for shards in [s for s in args.shards if s <= 4]:
                row = measure(n, shards, args.writers, args.batch, diversity=True, repeats=args.repeats)
                rows.append(row)
                _print(row)
    out = {"machine": machine(), "rows": rows, "skipped": skipped, "projection": projection(rows)}
    for proj in out["projection"]:
        print(json.dumps(proj))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
    return 0


def _print(row: dict[str, Any]) -> None:
    sel = "  ".join(
        f"{m}{'+fl' if row['diversity'] else ''} {s['seconds']:.2f}s" for m, s in row["select"].items()
    )
    print(
        f"n={row['n']:>11,} S={row['shards']}  ingest {row['ingest_samples_per_s'] / 1e6:5.2f} M/s  "
        f"shard CPU {np.median(row['shard_cpu_s_per_million']):.3f} s/M  select: {sel}  "
        f"RSS {max(row['rss_bytes']) / 2**30:.2f} GiB/shard, state {max(row['state_bytes']) / 2**30:.2f} GiB",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())

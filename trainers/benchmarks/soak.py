"""Soak test: two writers stream into one durable store at full speed while the REST API is queried.

Two writer actors (``num_cpus=1``, like Ray Train workers) stream byproduct batches the way
``curriculum.recorder.Recorder`` sends them (fire-and-forget ``ingest``, at most ``--window`` calls in
flight) into one store of n = 1,280,000 with a write-ahead log and a snapshot every 30 s. At the same
time a steady, bounded query load hits the Ray Serve app on loopback. Every 10 s the store actor's
RSS, its ingested count and the interval's query latencies are sampled. At the end the store must
have ingested exactly the samples sent and rejected none.

    python -m trainers.benchmarks.soak [--seconds 300] [--fsync always|round|never] [--json PATH]

With ``--writers 1 4 16`` it instead compares ``--fsync always`` with ``never`` per writer count
(group commit; :mod:`trainers.benchmarks.fsync_sweep`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before ``import ray``: the token file and usage reporting are not wanted for a throwaway cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402
from ray import serve  # noqa: E402

from scorer_service.config import StoreConfig  # noqa: E402
from scorer_service.durability.journal import FSYNC_POLICIES  # noqa: E402
from scorer_service.ray.actor import create_store  # noqa: E402
from trainers.benchmarks.report import (  # noqa: E402
    describe,
    machine,
    markdown_table,
    percentile,
    start_local_ray,
    write_json,
)
from trainers.benchmarks.rest import _wait_ready  # noqa: E402

N = 1_280_000  # an ImageNet-sized store
WRITERS = 2
STEP_SAMPLES = 256  # per rank and optimizer step
BATCH = 4096  # the Recorder's default flush_samples
WINDOW = 8  # the Recorder's default max_in_flight
BASE_LR = 0.1
LR_PERIOD_STEPS = 50_000  # a cosine cycle long enough that the rate changes slowly, as in training
SNAPSHOT_EVERY_S = 30.0
SAMPLE_EVERY_S = 10.0
QPS = 20.0
MAX_QUERIES_IN_FLIGHT = 32  # past this the client skips a tick instead of piling up requests
QUERY_TIMEOUT_S = 15.0  # above the API's own 10 s store timeout, so a slow store shows as a 503 first
HOST = "127.0.0.1"
NAMESPACE = "bench-soak"
RUN = "bench-soak"
# (weight, label, path): mostly point lookups, as a dashboard or a trainer's debugging would do.
QUERY_MIX = (
    (0.6, "sample", "/v1/runs/{run}/samples/{id}"),
    (0.15, "top", "/v1/runs/{run}/top?metric=dih&k=50"),
    (0.15, "histogram", "/v1/runs/{run}/histogram?metric=dih&bins=20"),
    (0.1, "health", "/v1/health"),
)


def lr_at(steps: np.ndarray) -> np.ndarray:
    """Periodic cosine with a floor: a pure function of the step, so every writer reports the same rate
    for a step without knowing how long the run lasts."""
    phase = (steps % LR_PERIOD_STEPS) / LR_PERIOD_STEPS
    return BASE_LR * (0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * phase)))


class Writer:
    """One trainer process: streams epochs over its own id range until the deadline."""

    def __init__(self, rank: int, world: int, batch_size: int, seed: int = 0) -> None:
        self.rank = rank
        self.shard = N // world
        self.lo = rank * self.shard
        self.batch_size = batch_size
        self.steps_per_epoch = self.shard // STEP_SAMPLES
        self.rng = np.random.default_rng([seed, rank, world])
        self.writer = f"soak-rank{rank}"

    def ready(self) -> bool:
        return True

    def _epoch(self, epoch: int) -> dict[str, np.ndarray]:
        shard = self.shard
        step = epoch * self.steps_per_epoch + np.arange(shard, dtype=np.int64) // STEP_SAMPLES
        # Losses shrink over the first epochs and correctness follows the loss, as a classifier's would.
        loss = (self.rng.exponential(2.5, shard) * (0.2 + 0.8 * 0.9**epoch)).astype(np.float32)
        return {
            "sample_id": self.lo + self.rng.permutation(shard).astype(np.int64),
            "loss": loss,
            "correct": loss < 1.0,
            "step": step,
            "lr": lr_at(step),
        }

    def stream(self, store: ray.actor.ActorHandle, start_at: float, stop_at: float, window: int) -> dict:
        """Send batches with a bounded window until ``stop_at``, then wait for every reply.

        Each call's latency (sent to acknowledged) is taken when the writer sees its reply: it waits for
        the first reply whenever the window is full, which is most of the time at full speed.
        """
        while (delay := start_at - time.time()) > 0:
            time.sleep(delay)
        t0 = time.time()
        in_flight: list[ray.ObjectRef] = []
        sent_at: dict[ray.ObjectRef, float] = {}
        latencies: list[tuple[float, float]] = []  # (sent, seconds to the acknowledgement)

        def acknowledged(refs: list[ray.ObjectRef]) -> int:
            now = time.time()
            latencies.extend((sent_at[r], now - sent_at.pop(r)) for r in refs)
            return sum(
                r["duplicate"] for r in ray.get(refs)
            )  # surfaces a rejected batch, as the Recorder does

        sent = seq = epoch = 0
        duplicates = 0
        while time.time() < stop_at:
            cols = self._epoch(epoch)
            # A batch never crosses an epoch (the Recorder flushes on a round change), so the last is short.
            for a in range(0, self.shard, self.batch_size):
                if time.time() >= stop_at:
                    break
                b = min(a + self.batch_size, self.shard)
                batch: dict[str, Any] = {k: v[a:b].copy() for k, v in cols.items()}
                batch |= {"round": epoch, "rank": self.rank, "writer": self.writer, "seq": seq}
                while len(in_flight) >= window:
                    ready, in_flight = ray.wait(in_flight, num_returns=1)
                    duplicates += acknowledged(ready)
                ref = store.ingest.remote(batch)
                sent_at[ref] = time.time()
                in_flight.append(ref)
                sent += b - a
                seq += 1
            epoch += 1
        while in_flight:
            ready, in_flight = ray.wait(in_flight, num_returns=1)
            duplicates += acknowledged(ready)
        return {
            "latencies": latencies,
            "rank": self.rank,
            "start": t0,
            "end": time.time(),
            "samples": sent,
            "batches": seq,
            "epochs": epoch,
            "duplicates": duplicates,
        }


WriterActor = ray.remote(num_cpus=1)(Writer)


def _actor_pid(_instance: Any) -> int:
    return os.getpid()


def memory_mib(pid: int) -> tuple[float, float]:
    """Resident set size and its high-water mark (VmRSS, VmHWM) of ``pid`` from /proc; NaN once gone.

    The high-water mark catches the short peaks of a snapshot that a 10 s sample would miss."""
    out = {"VmRSS:": float("nan"), "VmHWM:": float("nan")}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in out:
                    out[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out["VmRSS:"], out["VmHWM:"]


def dir_mib(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass  # a snapshot or log deleted while walking
    return total / 2**20


def snapshot_windows(path: Path) -> dict[int, tuple[float, float]]:
    """When each visible snapshot was taken and when it was complete: its ``created`` (the copy of the
    state) and its manifest's mtime (written last). The soak polls every second, so it sees each one
    before the next replaces it."""
    out: dict[int, tuple[float, float]] = {}
    for manifest in path.rglob("snap-*.json"):
        try:
            meta = json.loads(manifest.read_text())
            out[int(meta["seq"])] = (float(meta["created"]), manifest.stat().st_mtime)
        except (OSError, ValueError, KeyError):
            pass
    return out


def ingest_latency(writers: list[dict[str, Any]], snaps: dict[int, tuple[float, float]]) -> dict[str, Any]:
    """p50 / p99 of the ingest calls that overlapped a snapshot (from its copy to its manifest) and of
    the others; the initial snapshot, taken before the writers start, is left out."""
    windows = np.array([w for seq, w in snaps.items() if seq > 1] or [(0.0, 0.0)])
    calls = np.array([c for w in writers for c in w["latencies"]])
    sent, seconds = calls[:, 0], calls[:, 1]
    during = ((sent[:, None] <= windows[:, 1]) & (sent[:, None] + seconds[:, None] >= windows[:, 0])).any(1)
    out: dict[str, Any] = {}
    for name, mask in (("during_snapshot", during), ("otherwise", ~during)):
        ms = 1e3 * seconds[mask]
        out[name] = {
            "calls": int(mask.sum()),
            **{f"p{q}_ms": float(np.percentile(ms, q)) if ms.size else float("nan") for q in (50, 99)},
        }
    out["p99_ratio"] = out["during_snapshot"]["p99_ms"] / out["otherwise"]["p99_ms"]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Query:
    t: float  # seconds since the start of streaming
    kind: str
    ms: float
    status: int | str  # HTTP status, or "timeout" / "error"


@dataclass
class Load:
    """Paced query load: one request per tick, never more than MAX_QUERIES_IN_FLIGHT outstanding."""

    url: str
    qps: float
    seed: int = 0
    done: list[Query] = field(default_factory=list)
    skipped: int = 0

    async def run(self, t_start: float, stop_at: float) -> None:
        rng = np.random.default_rng(self.seed)
        weights = np.array([w for w, _, _ in QUERY_MIX])
        limits = httpx.Limits(max_connections=MAX_QUERIES_IN_FLIGHT, max_keepalive_connections=8)
        tasks: set[asyncio.Task] = set()
        async with httpx.AsyncClient(base_url=self.url, timeout=QUERY_TIMEOUT_S, limits=limits) as client:
            tick = 0
            while (now := time.time()) < stop_at:
                # Pace against the schedule, not the previous request, so slow answers do not lower the rate.
                due = t_start + tick / self.qps
                if due > now:
                    await asyncio.sleep(due - now)
                tick += 1
                if len(tasks) >= MAX_QUERIES_IN_FLIGHT:
                    self.skipped += 1
                    continue
                _, kind, path = QUERY_MIX[int(rng.choice(len(QUERY_MIX), p=weights / weights.sum()))]
                task = asyncio.create_task(
                    self._one(client, kind, path.format(run=RUN, id=int(rng.integers(N))), t_start)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient, kind: str, path: str, t_start: float) -> None:
        t0 = time.perf_counter()
        sent_at = time.time() - t_start
        status: int | str
        try:
            status = (await client.get(path)).status_code
        except httpx.TimeoutException:
            status = "timeout"
        except httpx.HTTPError:
            status = "error"
        self.done.append(Query(sent_at, kind, 1e3 * (time.perf_counter() - t0), status))


def _latency_stats(queries: list[Query]) -> dict[str, Any]:
    ok = [q.ms for q in queries if isinstance(q.status, int) and 200 <= q.status < 300]
    stats: dict[str, Any] = {
        "queries": len(queries),
        "ok": len(ok),
        "non_2xx": sum(isinstance(q.status, int) and not 200 <= q.status < 300 for q in queries),
        "timeouts": sum(q.status == "timeout" for q in queries),
        "transport_errors": sum(q.status == "error" for q in queries),
    }
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        stats[f"{name}_ms"] = percentile(ok, q) if ok else float("nan")
    stats["max_ms"] = max(ok) if ok else float("nan")
    return stats


async def _sample(
    store: ray.actor.ActorHandle, pid: int, snap_dir: Path, t_start: float, window: list[Query]
) -> dict[str, Any]:
    t_call = time.time()
    info = await store.info.remote()
    t = time.time() - t_start
    rss, hwm = memory_mib(pid)
    return {
        "t_s": round(t, 2),
        "info_call_ms": 1e3 * (time.time() - t_call),  # waits behind queued ingests and snapshots
        "ingested": int(info["ingested"]),
        "rejected": int(info["rejected"]),
        "duplicates": int(info["duplicates"]),
        "steps": int(info["steps"]),
        "store_rss_mib": rss,
        "store_rss_peak_mib": hwm,
        "snapshot_dir_mib": dir_mib(snap_dir),
        # Others share the box: the load average says how much of it this run had.
        "load_avg_1m": os.getloadavg()[0],
        "interval": _latency_stats(window),
    }


async def soak(
    store: ray.actor.ActorHandle,
    writers: list[ray.actor.ActorHandle],
    pid: int,
    snap_dir: Path,
    url: str,
    seconds: float,
    qps: float,
    window: int,
) -> dict[str, Any]:
    start_at = time.time() + 1.0  # time for both writers to receive their call before the start
    stop_at = start_at + seconds
    load = Load(url, qps)
    samples = [await _sample(store, pid, snap_dir, start_at, [])]
    snaps = snapshot_windows(snap_dir)
    streams = [asyncio.ensure_future(w.stream.remote(store, start_at, stop_at, window)) for w in writers]
    queries = asyncio.create_task(load.run(start_at, stop_at))

    seen = 0
    k = 1
    while True:
        # Returns early only when every stream is done (ALL_COMPLETED).
        await asyncio.wait(streams, timeout=max(0.0, min(1.0, start_at + k * SAMPLE_EVERY_S - time.time())))
        snaps |= snapshot_windows(snap_dir)
        if all(s.done() for s in streams):
            break
        if time.time() < start_at + k * SAMPLE_EVERY_S:
            continue
        recent, seen = load.done[seen:], len(load.done)
        samples.append(await _sample(store, pid, snap_dir, start_at, recent))
        s = samples[-1]
        print(
            f"  t {s['t_s']:6.1f} s  ingested {s['ingested']:>11,}  store RSS {s['store_rss_mib']:7.1f} MiB"
            f"  disk {s['snapshot_dir_mib']:7.1f} MiB  queries {s['interval']['queries']:4d}"
            f"  p99 {s['interval']['p99_ms']:7.1f} ms  info {s['info_call_ms']:6.1f} ms"
            f"  load {s['load_avg_1m']:4.1f}",
            flush=True,
        )
        k += 1
    results = [await s for s in streams]
    await queries
    final = await _sample(store, pid, snap_dir, start_at, load.done[seen:])
    samples.append(final)
    snaps |= snapshot_windows(snap_dir)
    return {
        "writers": results,
        "samples": samples,
        "queries": load.done,
        "skipped": load.skipped,
        "snaps": snaps,
    }


def summarize(raw: dict[str, Any], seconds: float, qps: float) -> dict[str, Any]:
    writers = raw["writers"]
    samples = raw["samples"]
    final = samples[-1]
    sent = sum(w["samples"] for w in writers)
    duration = max(w["end"] for w in writers) - min(w["start"] for w in writers)
    rss = [s["store_rss_mib"] for s in samples]
    by_kind = {
        kind: _latency_stats([q for q in raw["queries"] if q.kind == kind]) for _, kind, _ in QUERY_MIX
    }
    snaps = raw["snaps"]
    return {
        "seconds_requested": seconds,
        "duration_s": duration,
        "samples_sent": sent,
        "samples_ingested": final["ingested"],
        "ingest_samples_per_s": final["ingested"] / duration,
        "batches_sent": sum(w["batches"] for w in writers),
        "rejected": final["rejected"],
        "duplicates_store": final["duplicates"],
        "duplicates_acknowledged": sum(w["duplicates"] for w in writers),
        "steps": final["steps"],
        "qps_target": qps,
        "queries_skipped": raw["skipped"],
        "queries": _latency_stats(raw["queries"]),
        "queries_by_kind": by_kind,
        "store_rss_mib": {
            "first": rss[0],
            "after_10s": rss[1] if len(rss) > 1 else float("nan"),
            "last": rss[-1],
            "max": max(rss),
            "peak": samples[-1]["store_rss_peak_mib"],
        },
        "snapshot_dir_mib_max": max(s["snapshot_dir_mib"] for s in samples),
        "load_avg_1m": {"first": samples[0]["load_avg_1m"], "max": max(s["load_avg_1m"] for s in samples)},
        "snapshots_taken": max(snaps, default=0),
        "snapshot_seconds": {str(k): done - taken for k, (taken, done) in sorted(snaps.items())},
        "ingest_latency": ingest_latency(writers, snaps),
        "fsync": raw["fsync"],
        "ok": final["ingested"] == sent and final["rejected"] == 0,
    }


def table(s: dict[str, Any]) -> str:
    q = s["queries"]
    r = s["store_rss_mib"]
    periodic = [v for k, v in s["snapshot_seconds"].items() if k != "1"]
    snap_note = f" (periodic: {min(periodic):.2f} to {max(periodic):.2f} s each)" if periodic else ""
    lat = s["ingest_latency"]
    rows = [
        ["fsync policy", s["fsync"]],
        ["duration", f"{s['duration_s']:.1f} s"],
        ["samples sent / ingested", f"{s['samples_sent']:,} / {s['samples_ingested']:,}"],
        ["ingest samples/s", f"{s['ingest_samples_per_s']:,.0f}"],
        ["batches sent", f"{s['batches_sent']:,}"],
        ["rejected / duplicate batches", f"{s['rejected']} / {s['duplicates_store']}"],
        [
            "queries sent (target qps)",
            f"{q['queries']:,} ({s['qps_target']:g}/s; {s['queries_skipped']} skipped at the bound)",
        ],
        [
            "query p50 / p95 / p99 / max",
            f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f} / {q['p99_ms']:.1f} / {q['max_ms']:.1f} ms",
        ],
        [
            "query errors (non-2xx / timeouts / transport)",
            f"{q['non_2xx']} / {q['timeouts']} / {q['transport_errors']}",
        ],
        [
            "store RSS first / at 10 s / last / max sampled (peak)",
            f"{r['first']:.0f} / {r['after_10s']:.0f} / {r['last']:.0f} / {r['max']:.0f}"
            f" ({r['peak']:.0f}) MiB",
        ],
        ["snapshot dir max (snapshots + WAL)", f"{s['snapshot_dir_mib_max']:.0f} MiB"],
        ["snapshots taken (incl. the initial one)", f"{s['snapshots_taken']}{snap_note}"],
        *(
            [
                f"ingest call p50 / p99 {label}",
                f"{lat[key]['p50_ms']:.1f} / {lat[key]['p99_ms']:.1f} ms ({lat[key]['calls']:,} calls)",
            ]
            for key, label in (("during_snapshot", "during a snapshot"), ("otherwise", "otherwise"))
        ),
        ["ingest p99 during a snapshot / otherwise", f"{lat['p99_ratio']:.2f}"],
        [
            "load average (1 min) at start / max",
            f"{s['load_avg_1m']['first']:.1f} / {s['load_avg_1m']['max']:.1f}",
        ],
    ]
    return markdown_table(["", "value"], rows, "lr")


def kind_table(s: dict[str, Any]) -> str:
    rows = [
        [
            kind,
            k["queries"],
            round(k["p50_ms"], 1),
            round(k["p95_ms"], 1),
            round(k["p99_ms"], 1),
            round(k["max_ms"], 1),
        ]
        for kind, k in s["queries_by_kind"].items()
    ]
    return markdown_table(["query", "count", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows, "lrrrrr")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainers.benchmarks.soak", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--seconds", type=float, help="how long the writers stream (default 300; with --writers: 15 each)"
    )
    p.add_argument(
        "--writers",
        type=int,
        nargs="+",
        metavar="N",
        help="instead: ingest throughput under --fsync always and never with N writers each, no REST load",
    )
    p.add_argument("--json", metavar="PATH", help="also write the summary and the 10 s samples as JSON")
    p.add_argument("--qps", type=float, default=QPS, help="REST queries per second")
    p.add_argument("--window", type=int, default=WINDOW, help="ingest calls in flight per writer")
    p.add_argument("--batch", type=int, default=BATCH, help="samples per ingest call")
    p.add_argument("--snapshot-every", type=float, default=SNAPSHOT_EVERY_S, help="seconds between snapshots")
    p.add_argument("--fsync", choices=FSYNC_POLICIES, default="always", help="the store's fsync policy")
    args = p.parse_args(argv)
    if args.writers:
        from trainers.benchmarks import fsync_sweep

        args.seconds = fsync_sweep.SECONDS if args.seconds is None else args.seconds
        return fsync_sweep.run(args)
    args.seconds = 300.0 if args.seconds is None else args.seconds

    if __name__ != "__main__":
        # Imported (not run with -m): workers cannot import this package, so ship its classes by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    snap_dir = Path(tempfile.mkdtemp(prefix="soak-snapshots-"))
    mach = machine()
    print(describe(mach), flush=True)
    start_local_ray(NAMESPACE, num_cpus=2)
    store = None
    writers: list[ray.actor.ActorHandle] = []
    serve_started = False
    try:
        from scorer_service.ray.serve import start

        config = StoreConfig(
            n=N,
            epochs=1000,
            run=RUN,
            snapshot_dir=str(snap_dir),
            snapshot_every_s=args.snapshot_every,
            fsync=args.fsync,
        )
        store = create_store(config)
        pid = ray.get(store.__ray_call__.remote(_actor_pid))
        serve_started = True
        url = start(HOST, _free_port())
        _wait_ready(url)
        writers = [WriterActor.remote(rank, WRITERS, args.batch) for rank in range(WRITERS)]
        ray.get([w.ready.remote() for w in writers])
        print(
            f"n = {N:,}, {WRITERS} writers, batch {args.batch}, window {args.window}, {args.qps:g} queries/s,"
            f" snapshot every {args.snapshot_every:g} s into {snap_dir}, {args.seconds:g} s",
            flush=True,
        )
        raw = asyncio.run(soak(store, writers, pid, snap_dir, url, args.seconds, args.qps, args.window))
        raw["fsync"] = args.fsync
    finally:
        if serve_started:
            serve.shutdown()
        for handle in [*writers, *([store] if store is not None else [])]:
            ray.kill(handle, no_restart=True)
        ray.shutdown()
        shutil.rmtree(snap_dir, ignore_errors=True)

    summary = summarize(raw, args.seconds, args.qps)
    print(table(summary))
    print()
    print(kind_table(summary))
    if args.json:
        write_json(
            Path(args.json),
            {
                "machine": mach,
                "settings": {
                    "n": N,
                    "writers": WRITERS,
                    "batch": args.batch,
                    "window": args.window,
                    "qps": args.qps,
                    "snapshot_every_s": args.snapshot_every,
                    "sample_every_s": SAMPLE_EVERY_S,
                    "query_mix": [{"weight": w, "kind": k, "path": p} for w, k, p in QUERY_MIX],
                },
                "summary": summary,
                "writers": [{k: v for k, v in w.items() if k != "latencies"} for w in raw["writers"]],
                "samples": raw["samples"],
            },
        )
    if not summary["ok"]:
        raise SystemExit(
            f"store ingested {summary['samples_ingested']:,} of {summary['samples_sent']:,} samples sent,"
            f" rejected {summary['rejected']}"
        )
    print(
        f"ok: store ingested == samples sent ({summary['samples_sent']:,}), 0 rejected,"
        f" {summary['duplicates_store']} duplicate batches"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

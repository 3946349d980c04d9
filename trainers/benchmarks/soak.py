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
from pathlib import Path
from typing import Any

# Before ``import ray``: the token file and usage reporting are not wanted for a throwaway cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray import serve  # noqa: E402

from scorer_service.config import StoreConfig  # noqa: E402
from scorer_service.durability.journal import FSYNC_POLICIES  # noqa: E402
from scorer_service.ray.actor import create_store  # noqa: E402
from trainers.benchmarks import soak_writers  # noqa: E402
from trainers.benchmarks.harness import describe, machine, start_local_ray, write_json  # noqa: E402
from trainers.benchmarks.rest import _wait_ready  # noqa: E402
from trainers.benchmarks.soak_load import QPS, QUERY_MIX, Load, Query, latency_stats  # noqa: E402
from trainers.benchmarks.soak_report import kind_table, summarize, table  # noqa: E402
from trainers.benchmarks.soak_writers import BATCH, NAMESPACE, RUN, WINDOW, WRITERS, N, WriterActor  # noqa: E402

SNAPSHOT_EVERY_S = 30.0
SAMPLE_EVERY_S = 10.0
HOST = "127.0.0.1"


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


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
        "ingested": int(info.ingested),
        "rejected": int(info.rejected),
        "duplicates": int(info.duplicates),
        "steps": int(info.steps),
        "store_rss_mib": rss,
        "store_rss_peak_mib": hwm,
        "snapshot_dir_mib": dir_mib(snap_dir),
        # Others share the box: the load average says how much of it this run had.
        "load_avg_1m": os.getloadavg()[0],
        "interval": latency_stats(window),
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
        # Imported (not run with -m): workers may not import this package, so ship its code by value.
        for module in (sys.modules[__name__], soak_writers):
            ray.cloudpickle.register_pickle_by_value(module)
    snap_dir = Path(tempfile.mkdtemp(prefix="soak-snapshots-"))
    mach = machine()
    print(describe(mach), flush=True)
    start_local_ray(NAMESPACE, num_cpus=2)
    store = None
    writers: list[ray.actor.ActorHandle] = []
    serve_started = False
    try:
        from scorer_service.ray.serve import start

        config = StoreConfig.create(
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

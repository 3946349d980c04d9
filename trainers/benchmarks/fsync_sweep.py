"""Group commit under load: ingest throughput with ``--fsync always`` against ``never``, per writer count.

For each writer count (default 1, 4 and 16) one fresh durable store per policy (n = 1,280,000, the
write-ahead log in a temp dir, no periodic snapshot) takes that many writer actors streaming
4096-sample batches, 8 calls in flight each (the recorder's defaults), for ``--seconds``; there is no
REST load. Within a writer count the policies run one right after the other, so both see the same
background load. The store's fsync count against its acknowledged batches says how many batches
each fsync covered. Reached through the soak benchmark:

    python -m trainers.benchmarks.soak --writers 1 4 16 [--seconds 15] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray

from scorer_service.config import StoreConfig
from scorer_service.ray.actor import create_store
from trainers.benchmarks.harness import describe, machine, markdown_table, start_local_ray, write_json
from trainers.benchmarks.soak_writers import NAMESPACE, RUN, N, WriterActor

POLICIES = ("never", "always")
SECONDS = 15.0


def one(writers: int, policy: str, args: argparse.Namespace, snap_dir: Path) -> dict[str, Any]:
    """One store under ``policy`` fed by ``writers`` writer actors for ``args.seconds``."""
    config = StoreConfig.create(
        n=N,
        epochs=1000,
        run=f"{RUN}-{policy}-{writers}",
        snapshot_dir=str(snap_dir),
        snapshot_every_s=1e9,  # only the initial snapshot: the log alone is measured
        fsync=policy,
    )
    store = create_store(config)
    # num_cpus=0: 16 writers must run at once on a 2-core box, as trainers sharing a node would.
    actors = [WriterActor.options(num_cpus=0).remote(rank, writers, args.batch) for rank in range(writers)]
    try:
        ray.get([a.ready.remote() for a in actors])
        start_at = time.time() + 1.0
        stop_at = start_at + args.seconds
        streams = ray.get([a.stream.remote(store, start_at, stop_at, args.window) for a in actors])
        info = ray.get(store.info.remote())
    finally:
        for handle in [*actors, store]:
            ray.kill(handle, no_restart=True)
        shutil.rmtree(snap_dir / config.run, ignore_errors=True)
    duration = max(s["end"] for s in streams) - min(s["start"] for s in streams)
    sent = sum(s["samples"] for s in streams)
    ms = 1e3 * np.array([seconds for s in streams for _, seconds in s["latencies"]])
    return {
        "writers": writers,
        "fsync": policy,
        "duration_s": duration,
        "samples_sent": sent,
        "samples_ingested": int(info.ingested),
        "samples_per_s": info.ingested / duration,
        "batches": int(info.batches),
        "fsyncs": int(info.fsyncs),
        "rejected": int(info.rejected),
        "call_p50_ms": float(np.percentile(ms, 50)),
        "call_p99_ms": float(np.percentile(ms, 99)),
        "ok": int(info.ingested) == sent and info.rejected == 0,
    }


def table(rows: list[dict[str, Any]]) -> str:
    by = {(r["writers"], r["fsync"]): r for r in rows}
    out = []
    for w in sorted({r["writers"] for r in rows}):
        never, always = by[w, "never"], by[w, "always"]
        per_fsync = always["batches"] / always["fsyncs"] if always["fsyncs"] else float("nan")
        out.append(
            [
                w,
                f"{never['samples_per_s']:,.0f}",
                f"{always['samples_per_s']:,.0f}",
                f"{100 * always['samples_per_s'] / never['samples_per_s']:.0f} %",
                f"{always['batches']:,}",
                f"{always['fsyncs']:,}",
                f"{per_fsync:.1f}",
                f"{never['call_p50_ms']:.1f} / {never['call_p99_ms']:.1f}",
                f"{always['call_p50_ms']:.1f} / {always['call_p99_ms']:.1f}",
            ]
        )
    header = [
        "writers",
        "never: samples/s",
        "always: samples/s",
        "always / never",
        "always: batches",
        "always: fsyncs",
        "batches per fsync",
        "never: call p50 / p99 ms",
        "always: call p50 / p99 ms",
    ]
    return markdown_table(header, out, "rrrrrrrrr")


def run(args: argparse.Namespace) -> int:
    """The sweep of ``args.writers`` x :data:`POLICIES`; prints the table, exits non-zero on a lost batch."""
    mach = machine()
    print(describe(mach), flush=True)
    print(
        f"n = {N:,}, writers {args.writers}, batch {args.batch}, window {args.window},"
        f" {args.seconds:g} s per store, fsync {' then '.join(POLICIES)}",
        flush=True,
    )
    snap_dir = Path(tempfile.mkdtemp(prefix="fsync-sweep-"))
    start_local_ray(NAMESPACE, num_cpus=2)
    rows = []
    try:
        for writers in args.writers:
            for policy in POLICIES:
                rows.append(one(writers, policy, args, snap_dir))
                r = rows[-1]
                print(
                    f"  {writers:3d} writers, fsync {policy:6s}: {r['samples_per_s']:12,.0f} samples/s,"
                    f" {r['batches']:,} batches, {r['fsyncs']:,} fsyncs",
                    flush=True,
                )
    finally:
        ray.shutdown()
        shutil.rmtree(snap_dir, ignore_errors=True)
    print(table(rows))
    if args.json:
        settings = {"n": N, "batch": args.batch, "window": args.window, "seconds": args.seconds}
        write_json(Path(args.json), {"machine": mach, "settings": settings, "rows": rows})
    bad = [r for r in rows if not r["ok"]]
    if bad:
        raise SystemExit(f"samples lost or rejected: {bad}")
    return 0

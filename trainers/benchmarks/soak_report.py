"""The soak's summary and tables: what was sent against what was ingested, query and ingest latency,
the store's memory and its snapshots."""

from __future__ import annotations

from typing import Any

import numpy as np

from trainers.benchmarks.harness import markdown_table
from trainers.benchmarks.soak_load import QUERY_MIX, latency_stats


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


def summarize(raw: dict[str, Any], seconds: float, qps: float) -> dict[str, Any]:
    writers = raw["writers"]
    samples = raw["samples"]
    final = samples[-1]
    sent = sum(w["samples"] for w in writers)
    duration = max(w["end"] for w in writers) - min(w["start"] for w in writers)
    rss = [s["store_rss_mib"] for s in samples]
    by_kind = {kind: latency_stats([q for q in raw["queries"] if q.kind == kind]) for _, kind, _ in QUERY_MIX}
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
        "queries": latency_stats(raw["queries"]),
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

"""The soak's REST load: a steady, bounded stream of queries against the Ray Serve app, and their
latency statistics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from trainers.benchmarks.harness import percentile
from trainers.benchmarks.soak_writers import RUN, N

QPS = 20.0
MAX_QUERIES_IN_FLIGHT = 32  # past this the client skips a tick instead of piling up requests
QUERY_TIMEOUT_S = 15.0  # above the API's own 10 s store timeout, so a slow store shows as a 503 first
# (weight, label, path): mostly point lookups, as a dashboard or a trainer's debugging would do.
QUERY_MIX = (
    (0.6, "sample", "/v1/runs/{run}/samples/{id}"),
    (0.15, "top", "/v1/runs/{run}/top?metric=dih&k=50"),
    (0.15, "histogram", "/v1/runs/{run}/histogram?metric=dih&bins=20"),
    (0.1, "health", "/v1/health"),
)


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


def latency_stats(queries: list[Query]) -> dict[str, Any]:
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

"""REST latency and throughput of the score API, and Parquet export of an ImageNet-sized score table.

Three servers answer the same route, ``GET /v1/runs/{run}/samples/{id}``, on loopback:

* the project's Ray Serve app (``scorer_service.ray.serve``: HTTP proxy -> replica -> store actor);
* the project's FastAPI app (``scorer_service.web.app.build_app``) over an in-process store, served by
  plain uvicorn in its own process (no Ray anywhere on the request path);
* a trivial FastAPI app under uvicorn that returns a constant, the floor of the stack.

The client runs on the same machine: httpx over one keep-alive connection for latency (sequential
requests after a warm-up), and aiohttp with ``concurrency`` connections from one asyncio loop for
requests/s.
Client and servers share the cores, so requests/s is what this box does end to end, not a server's
ceiling.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from scorer_service.config import StoreConfig
from scorer_service.core.state import COLUMNS
from scorer_service.store import HardnessStore
from trainers.benchmarks.harness import ProgressFn, child_env, markdown_table, percentile, pyplot, save_figure

RUN = "bench-rest"
HOST = "127.0.0.1"
WARMUP = 50
EXPORT_TARGET_S = 3.0
SERVERS = {
    "trivial": "uvicorn: trivial FastAPI",
    "project": "uvicorn: project API, in-process store (no Ray)",
    "serve": "Ray Serve: project API -> store actor",
}


@dataclass
class Settings:
    latency_requests: int
    throughput_requests: int
    concurrency: int
    store_n: int
    parquet_n: int
    parquet_reps: int
    servers: tuple[str, ...] = ("trivial", "project", "serve")

    @classmethod
    def full(cls) -> Settings:
        return cls(2000, 4000, 16, 100_000, 1_280_000, 3)

    @classmethod
    def quick(cls) -> Settings:
        return cls(300, 600, 16, 100_000, 1_280_000, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _observed_batch(ids: np.ndarray, step: int, rng: np.random.Generator) -> dict[str, Any]:
    """One byproduct batch observing ``ids`` at ``step``: varied losses, as after some training."""
    m = len(ids)
    loss = rng.exponential(1.0, m).astype(np.float32)
    return {
        "sample_id": ids.astype(np.int64),
        "loss": loss,
        "correct": loss < 1.0,
        "step": np.full(m, step, dtype=np.int64),
        "lr": np.full(m, 0.1),
        "round": 0,
        "rank": 0,
        "writer": "bench",
        "seq": step,
    }


def filled_store(n: int, chunk: int = 65_536) -> HardnessStore:
    """An in-process store whose every sample has been observed once."""
    store = HardnessStore(StoreConfig(n=n, epochs=10, run=RUN))
    rng = np.random.default_rng(0)
    order = rng.permutation(n)
    for step, start in enumerate(range(0, n, chunk)):
        store.ingest(_observed_batch(order[start : start + chunk], step, rng))
    return store


def _serve_uvicorn(kind: str, port: int, n: int) -> None:
    """Child-process entry: serve the project app over a local store, or the trivial app."""
    import uvicorn
    from fastapi import FastAPI

    from scorer_service.web.app import build_app
    from scorer_service.web.directory import LocalDirectory

    if kind == "project":
        app = build_app(LocalDirectory({RUN: filled_store(n)}))
    else:
        app = FastAPI()

        @app.get("/v1/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/v1/runs/{run}/samples/{sample_id}")
        async def sample(run: str, sample_id: int) -> dict[str, Any]:
            return {"id": sample_id, "run": run, "dih": 1.0}

    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def _wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with status {proc.returncode}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer /v1/health within {timeout:g} s")
        time.sleep(0.2)


def _paths(n: int, count: int, seed: int) -> list[str]:
    ids = np.random.default_rng(seed).integers(0, n, count)
    return [f"/v1/runs/{RUN}/samples/{i}" for i in ids]


def _latency(url: str, paths: list[str]) -> tuple[list[float], int]:
    """Per-request seconds over one keep-alive connection, and how many answers were not 200."""
    errors = 0
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for p in paths[:WARMUP]:
            client.get(p)
        for p in paths[WARMUP:]:
            t0 = time.perf_counter()
            r = client.get(p)
            times.append(time.perf_counter() - t0)
            errors += r.status_code != 200
    return times, errors


async def _throughput_async(url: str, paths: list[str], concurrency: int) -> tuple[float, int]:
    """Requests/s of ``concurrency`` keep-alive connections working through ``paths``, and non-200s.

    aiohttp, not httpx: httpx's async client was ~10x slower on this path, so it measured itself.
    """
    import aiohttp

    errors = 0
    queue = list(reversed(paths))

    async def get(http: aiohttp.ClientSession, path: str) -> None:
        nonlocal errors
        async with http.get(path) as r:
            await r.read()
            errors += r.status != 200

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            await get(http, queue.pop())

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as http:
        await asyncio.gather(*(get(http, p) for p in paths[:concurrency]))
        errors = 0
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return len(paths) / (time.perf_counter() - t0), errors


def _measure(name: str, url: str, settings: Settings) -> dict[str, Any]:
    times, errors = _latency(url, _paths(settings.store_n, settings.latency_requests + WARMUP, 1))
    rps, rps_errors = asyncio.run(
        _throughput_async(
            url, _paths(settings.store_n, settings.throughput_requests, 2), settings.concurrency
        )
    )
    ms = [1e3 * t for t in times]
    return {
        "server": name,
        "requests": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "latencies_ms": ms,
        "throughput_requests": settings.throughput_requests,
        "concurrency": settings.concurrency,
        "requests_per_s": rps,
        "errors": errors + rps_errors,
    }


def _uvicorn_server(kind: str, settings: Settings) -> dict[str, Any]:
    port = _free_port()
    # A fresh interpreter, not a fork: a fork would inherit the parent's Ray connection and threads.
    code = (
        "from trainers.benchmarks.rest import _serve_uvicorn; "
        f"_serve_uvicorn({kind!r}, {port}, {settings.store_n})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env())
    try:
        url = f"http://{HOST}:{port}"
        _wait_ready(url, proc)
        return _measure(SERVERS[kind], url, settings)
    finally:
        proc.terminate()
        proc.wait(10)


def _serve_server(settings: Settings) -> dict[str, Any]:
    import ray
    from ray import serve

    from scorer_service.ray.actor import create_store, delete_store
    from scorer_service.ray.serve import start

    store = create_store(StoreConfig(n=settings.store_n, epochs=10, run=RUN))
    rng = np.random.default_rng(0)
    ray.get(store.ingest.remote(_observed_batch(np.arange(settings.store_n), 0, rng)))
    try:
        url = start(HOST, _free_port())
        _wait_ready(url)
        return _measure(SERVERS["serve"], url, settings)
    finally:
        serve.shutdown()
        delete_store(RUN)


def parquet_export(n: int, reps: int) -> dict[str, Any]:
    """Seconds to gather every score column of an ``n``-sample store into an Arrow table and write
    it as Parquet (pyarrow defaults: snappy), median of ``reps``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = filled_store(n)
    build, write, size = [], [], 0
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        path = Path(tmp) / "scores.parquet"
        for _ in range(reps):
            t0 = time.perf_counter()
            table = pa.table(
                {"sample_id": np.arange(n, dtype=np.int64)} | {c: store.column(c) for c in COLUMNS}
            )
            t1 = time.perf_counter()
            pq.write_table(table, path)
            t2 = time.perf_counter()
            build.append(t1 - t0)
            write.append(t2 - t1)
            size = path.stat().st_size
            rows = pq.read_metadata(path).num_rows
            if rows != n:
                raise RuntimeError(f"exported {rows} rows, expected {n}")
    total = [b + w for b, w in zip(build, write, strict=True)]
    return {
        "n": n,
        "columns": 1 + len(COLUMNS),
        "reps": reps,
        "build_s": statistics.median(build),
        "write_s": statistics.median(write),
        "total_s": statistics.median(total),
        "all_total_s": total,
        "file_mib": size / 2**20,
        "target_s": EXPORT_TARGET_S,
    }


def run(settings: Settings, out: Path, progress: ProgressFn) -> dict[str, Any]:
    total = len(settings.servers) + 1
    servers = []
    for i, kind in enumerate(settings.servers):
        progress("rest", i, total, SERVERS[kind])
        servers.append(_serve_server(settings) if kind == "serve" else _uvicorn_server(kind, settings))
    progress("rest", len(settings.servers), total, "Parquet export")
    export = parquet_export(settings.parquet_n, settings.parquet_reps)
    progress("rest", total, total, "done")
    result = {"settings": asdict(settings), "servers": servers, "export": export}
    result["plot"] = plot(result, out)
    return result


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            s["server"],
            s["requests"],
            round(s["p50_ms"], 2),
            round(s["p99_ms"], 2),
            round(s["requests_per_s"]),
            s["concurrency"],
            s["errors"],
        ]
        for s in result["servers"]
    ]
    head = ["server (GET one sample)", "requests", "p50 ms", "p99 ms", "requests/s", "connections", "errors"]
    e = result["export"]
    export = markdown_table(
        ["samples", "columns", "build table s", "write Parquet s", "total s (median)", "file MiB", "<= 3 s"],
        [
            [
                e["n"],
                e["columns"],
                round(e["build_s"], 3),
                round(e["write_s"], 3),
                round(e["total_s"], 3),
                round(e["file_mib"], 1),
                "yes" if e["total_s"] <= e["target_s"] else "no",
            ]
        ],
        "rrrrrrl",
    )
    return markdown_table(head, rows, "lrrrrrr") + "\n\n" + export


def plot(result: dict[str, Any], out: Path) -> str | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for s in result["servers"]:
        ms = np.sort(s["latencies_ms"])
        ax.plot(ms, np.arange(1, len(ms) + 1) / len(ms), label=s["server"])
    ax.set_xscale("log")
    ax.set_xlabel("latency of one GET (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, out / "rest_latency.png")


def check(result: dict[str, Any]) -> list[str]:
    problems = [f"{s['server']}: {s['errors']} non-200 answers" for s in result["servers"] if s["errors"]]
    problems += [f"{s['server']}: no requests/s" for s in result["servers"] if not s["requests_per_s"] > 0]
    return problems

"""Byproducts into the store over HTTP (Arrow IPC) next to the Ray actor path, same batches.

One writer (this process) sends one rank's batches of ``trainers.benchmarks.ingest`` (n = 1.28M, 4,096 and
65,536 samples per call, at most 8 calls in flight) to a fresh store each time:

- ``ray``: ``ActorEndpoint`` (the actor call a Ray Train worker makes);
- ``http (uvicorn)``: ``HttpEndpoint`` to the FastAPI app served by uvicorn in its own process;
- ``http (Serve)``: ``HttpEndpoint`` to the Ray Serve deployment (``curriculum serve``).

    python -m trainers.benchmarks.http_ingest [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections import deque
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["CURRICULUM_API_TOKEN"] = "bench-token"  # inherited by the Serve replicas started below

import httpx  # noqa: E402
import ray  # noqa: E402

from curriculum._internal.ray_endpoint import ActorEndpoint  # noqa: E402
from curriculum.http_endpoint import HttpEndpoint  # noqa: E402
from scorer_service.config import StoreConfig  # noqa: E402
from scorer_service.ray.actor import NAMESPACE, create_store, get_store  # noqa: E402
from trainers.benchmarks.harness import child_env, drop_store, machine, markdown_table, start_local_ray  # noqa: E402
from trainers.benchmarks.ingest import N, build_batches  # noqa: E402

WINDOW = 8
SERVER = """
import sys, ray, uvicorn
ray.init(address=sys.argv[1], namespace="curriculum", log_to_driver=False)
from scorer_service.ray.serve import RayDirectory
from scorer_service.web.app import build_app
app = build_app(RayDirectory(), token="bench-token")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def stream(endpoint: Any, batches: list[dict[str, Any]]) -> float:
    """Seconds from the first send until every send is acknowledged, at most WINDOW in flight."""
    pending: deque = deque()
    t0 = time.perf_counter()
    for batch in batches:
        while len(pending) >= WINDOW:
            endpoint.ingest_result(pending.popleft())
        pending.append(endpoint.send_ingest(batch))
    while pending:
        endpoint.ingest_result(pending.popleft())
    return time.perf_counter() - t0


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no API at {url}")


def measure(path: str, url: str | None, batch_size: int, samples: int) -> dict[str, Any]:
    run = f"bench-http-{os.getpid()}-{path.split()[0]}-{batch_size}"
    create_store(StoreConfig(n=N, epochs=10, run=run, method="random"))
    batches = build_batches(0, 1, batch_size, 1)
    batches = [b for b in batches if b["sample_id"].size][: max(1, samples // batch_size)]
    endpoint = ActorEndpoint(run) if url is None else HttpEndpoint(url, run, token="bench-token")
    try:
        seconds = stream(endpoint, batches)
        ingested = ray.get(get_store(run).info.remote())
    finally:
        if url is not None:
            endpoint.close()
        drop_store(run)
    sent = sum(len(b["sample_id"]) for b in batches)
    return {
        "path": path,
        "batch": batch_size,
        "samples": sent,
        "seconds": seconds,
        "ingested": ingested.ingested,
    }


def free_ports(k: int) -> list[int]:
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainers.benchmarks.http_ingest", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="a quarter of the samples per configuration")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    samples = N // 4 if args.quick else N
    start_local_ray(NAMESPACE, num_cpus=2)
    uvicorn_port, serve_port = free_ports(2)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, ray.get_runtime_context().gcs_address, str(uvicorn_port)],
        env=child_env(),
    )
    rows = []
    try:
        from scorer_service.ray.serve import start

        serve_url = start(port=serve_port)
        uvicorn_url = f"http://127.0.0.1:{uvicorn_port}"
        wait_up(uvicorn_url)
        for batch_size in (4096, 65536):
            for path, url in (("ray", None), ("http (uvicorn)", uvicorn_url), ("http (Serve)", serve_url)):
                rows.append(measure(path, url, batch_size, samples))
                print(
                    f"{path} {batch_size}: {rows[-1]['samples'] / rows[-1]['seconds'] / 1e6:.2f}M/s",
                    file=sys.stderr,
                )
    finally:
        server.terminate()
        server.wait(10)
        ray.shutdown()
    ray_rate = {r["batch"]: r["samples"] / r["seconds"] for r in rows if r["path"] == "ray"}
    table = markdown_table(
        ["path", "samples per call", "samples", "M samples/s", "vs ray"],
        [
            [r["path"], f"{r['batch']:,}", f"{r['samples']:,}", f"{r['samples'] / r['seconds'] / 1e6:.2f}",
             f"{r['samples'] / r['seconds'] / ray_rate[r['batch']]:.2f}"]
            for r in rows
        ],
    )  # fmt: skip
    print(f"{machine()}\n{table}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": rows}, f, indent=2)
    bad = [r for r in rows if r["ingested"] != r["samples"]]
    if bad:
        raise SystemExit(f"samples sent but not ingested: {bad}")
    print("ok: every path ingested every sample sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())

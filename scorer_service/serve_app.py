"""The REST API as a Ray Serve deployment: stateless replicas that call the runs' store actors.

``app`` is the bound application: ``serve run scorer_service.serve_app:app``.
"""

from __future__ import annotations

from typing import Any

import ray
from ray import serve

from scorer_service.actor import QUERY_METHODS, delete_store, get_store, list_runs
from scorer_service.api import build_app


def _method(handle: ray.actor.ActorHandle, name: str) -> Any:
    method = getattr(handle, name)
    return method.options(concurrency_group="query") if name in QUERY_METHODS else method


class RayDirectory:
    """Finds stores by run name; re-resolves a handle whose actor was recreated."""

    def __init__(self) -> None:
        self._handles: dict[str, ray.actor.ActorHandle] = {}

    async def runs(self) -> list[str]:
        return list_runs()

    async def call(self, run: str, method: str, *args: Any) -> Any:
        handle = self._handles.get(run) or get_store(run)
        self._handles[run] = handle
        try:
            return await _method(handle, method).remote(*args)
        except ray.exceptions.ActorDiedError:
            self._handles.pop(run, None)
            return await _method(get_store(run), method).remote(*args)

    async def delete(self, run: str) -> None:
        self._handles.pop(run, None)
        delete_store(run)


api = build_app(RayDirectory())


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)
@serve.ingress(api)
class ScoreAPI:
    """Routes come from ``api``; the class only gives Serve a replica to host them."""


app = ScoreAPI.bind()


def start(host: str = "127.0.0.1", port: int = 8000, blocking: bool = False) -> str:
    """Deploy the API on the connected cluster; returns its base URL."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(
        app,
        name="curriculum",
        route_prefix="/",
        blocking=blocking,
        logging_config={"enable_access_log": False},
    )
    return f"http://{host}:{port}"

"""The REST API as a Ray Serve deployment: stateless replicas that call the runs' store actors.

``app`` is the bound application without sample images: ``serve run scorer_service.ray.serve:app``.
Every Ray call that blocks (listing, looking up and killing actors) runs in a worker thread, so
the replica's event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import ray
from fastapi import FastAPI
from ray import serve

from scorer_service.config import run_config
from scorer_service.core.errors import StoreUnavailable
from scorer_service.core.tokens import hash_token
from scorer_service.ray.actor import create_store, delete_store, get_store, list_runs
from scorer_service.ray.errors import unwrap
from scorer_service.ray.tokens import RayTokens
from scorer_service.web.app import build_app
from scorer_service.web.dashboard import ImageSource
from scorer_service.web.directory import P, R, StoreMethod

logger = logging.getLogger(__name__)


class RayDirectory:
    """Finds stores by run name; re-resolves a handle whose actor was recreated.

    A method runs in the actor's concurrency group for it (read-only ones in "query":
    :func:`~scorer_service.ray.actor.actor_class`). Errors arrive as the store raised them: Ray's
    wrapper (its task text, pid, node address and actor id) is dropped here, so it can never reach a
    client; a store that is gone or restarting is :class:`StoreUnavailable`.
    """

    def __init__(self) -> None:
        self._handles: dict[str, ray.actor.ActorHandle] = {}

    async def _handle(self, run: str) -> ray.actor.ActorHandle:
        handle = self._handles.get(run)
        if handle is None:
            handle = self._handles[run] = await asyncio.to_thread(get_store, run)
        return handle

    async def runs(self) -> list[str]:
        return await asyncio.to_thread(list_runs)

    async def call(self, run: str, method: StoreMethod[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        name = method.__name__
        try:
            try:
                return await getattr(await self._handle(run), name).remote(*args, **kwargs)
            except ray.exceptions.ActorDiedError:
                # Recreated under the same name (a new run, or replaced): look it up again, once.
                self._handles.pop(run, None)
                return await getattr(await self._handle(run), name).remote(*args, **kwargs)
        except ray.exceptions.RayTaskError as e:
            raise unwrap(e) from None
        except (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError) as e:
            self._handles.pop(run, None)
            logger.warning("the store of run %r is not available: %s", run, e)
            raise StoreUnavailable(f"the store of run {run!r} is not available") from None

    async def delete(self, run: str) -> None:
        self._handles.pop(run, None)
        await asyncio.to_thread(delete_store, run)

    async def create(
        self, run: str, n: int, num_classes: int | None, replace: bool, settings: dict[str, Any]
    ) -> None:
        config = run_config(run, n, num_classes=num_classes, **settings)
        self._handles.pop(run, None)
        await asyncio.to_thread(create_store, config, replace=replace)


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)
@serve.ingress()
class HardnessStoreAPI:
    """A replica hosting :func:`~scorer_service.web.app.build_app` over the cluster's stores."""

    def __init__(self, images: ImageSource | None = None, token_hash: str | None = None) -> None:
        self.images = images
        self.token_hash = token_hash

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_app(RayDirectory(), tokens=RayTokens(), token_hash=self.token_hash, images=self.images)


# serve.deployment made the class a deployment, which mypy does not see through a class decorator.
app = HardnessStoreAPI.bind()  # type: ignore[attr-defined]


def start(
    host: str = "127.0.0.1",
    port: int = 8000,
    blocking: bool = False,
    images: ImageSource | None = None,
    token: str | None = None,
) -> str:
    """Deploy the API on the connected cluster; returns its base URL. ``token``: the all-runs admin
    token (default: ``CURRICULUM_API_TOKEN`` in the replicas' environment); only its hash reaches
    the deployment."""
    serve.start(http_options={"host": host, "port": port})
    url = f"http://{host}:{port}"
    app_args = HardnessStoreAPI.bind(images, hash_token(token) if token else None)  # type: ignore[attr-defined]
    if blocking:
        serve.run(app_args, name="curriculum", route_prefix="/", blocking=True, logging_config=_QUIET)
        return url
    serve.run(app_args, name="curriculum", route_prefix="/", logging_config=_QUIET)
    _wait_until_it_answers(url)
    return url


_QUIET = {"enable_access_log": False}


def _wait_until_it_answers(url: str, timeout_s: float = 30.0) -> None:
    """Return once ``url`` answers; a Serve instance already running on the cluster keeps its own
    HTTP options (another port), which would leave ``url`` silent: say so instead."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=5.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the API was deployed but {url} does not answer: Ray Serve already runs on this cluster "
                "with other HTTP options (serve.shutdown() first, or use its port)"
            )
        time.sleep(0.2)

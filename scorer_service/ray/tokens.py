"""The service's scoped tokens in one named, detached Ray actor, kept in
``$CURRICULUM_SNAPSHOT_DIR/tokens.json`` (hashes and grants only), so every Serve replica and the
``curriculum token`` command see the same table, and it survives a restart of the actor or the
cluster. Found the way the directory finds a run's store: by name in the ``curriculum`` namespace.
"""

from __future__ import annotations

import asyncio
import os

import ray

from scorer_service.config import default_snapshot_dir
from scorer_service.core.tokens import Grant, TokenTable
from scorer_service.ray.actor import NAMESPACE
from scorer_service.ray.errors import callee_errors

TOKENS_ACTOR = "curriculum-tokens"


def tokens_path() -> str:
    return os.path.join(default_snapshot_dir(), "tokens.json")


# num_cpus=0: it must not take a CPU slot from the trainers; restarted (from its file) if it dies.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class TokenActor:
    def __init__(self, path: str) -> None:
        self.table = TokenTable(path)

    def entries(self) -> list[tuple[str, Grant]]:
        return self.table.entries()

    def create(self, role: str, run: str | None, prefix: str | None, name: str) -> tuple[str, Grant]:
        return self.table.create(role, run=run, prefix=prefix, name=name)

    def revoke(self, token_id: str) -> Grant:
        return self.table.revoke(token_id)


def token_actor() -> ray.actor.ActorHandle:
    """The cluster's token actor, started on first use (reading :func:`tokens_path` of this process)."""
    # ray.remote made the class an actor class, which mypy does not see through a class decorator.
    return TokenActor.options(  # type: ignore[attr-defined]
        name=TOKENS_ACTOR, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(tokens_path())


class RayTokens:
    """The token book of :mod:`scorer_service.web.auth` over the token actor; errors arrive as the
    table raised them (Ray's wrapper dropped)."""

    def __init__(self) -> None:
        self._handle: ray.actor.ActorHandle | None = None

    async def _call(self, method: str, *args: object) -> object:
        if self._handle is None:
            self._handle = await asyncio.to_thread(token_actor)
        with callee_errors():
            return await getattr(self._handle, method).remote(*args)

    async def entries(self) -> list[tuple[str, Grant]]:
        return await self._call("entries")  # type: ignore[return-value]

    async def create(self, role: str, run: str | None, prefix: str | None, name: str) -> tuple[str, Grant]:
        return await self._call("create", role, run, prefix, name)  # type: ignore[return-value]

    async def revoke(self, token_id: str) -> Grant:
        return await self._call("revoke", token_id)  # type: ignore[return-value]

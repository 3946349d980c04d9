"""Who may call what: bearer tokens with a role and a scope of runs (:mod:`scorer_service.core.tokens`).

Reads (scores, rounds, dashboard, export) need a ``read`` token, the trainer routes a ``train``
token, creating, replacing, snapshotting and deleting runs and managing tokens an ``admin`` token;
each token reaches only its runs. The single token of ``CURRICULUM_API_TOKEN`` (or ``build_app``'s
``token``) is an admin token for all runs. While the service holds no scoped token, reads need no
token, as before tokens had scopes; the first scoped token makes every route ask for one.

A missing or unknown token is a 401, a known one whose role or runs fall short a 403 that names
what it lacks; neither says anything of a run the token does not reach.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import quote

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scorer_service.core.errors import Forbidden, Unauthorized
from scorer_service.core.tokens import ROLE_DOES, Grant, TokenTable, find, hash_token
from scorer_service.web.directory import CALL_TIMEOUT_S, ApiError

# How long a replica trusts its copy of the token table: a token revoked elsewhere (another replica,
# the command line) stops working within this; one revoked through this replica at once.
TOKEN_CACHE_S = 1.0
ENV_GRANT = Grant("env", "admin", name="CURRICULUM_API_TOKEN")
# The dashboard's sign-in cookie: a token, sent back by the browser to the dashboard's pages only.
COOKIE = "curriculum_token"
SCHEME = "HTTPBearer"

logger = logging.getLogger(__name__)


def api_token() -> str | None:
    """The all-runs admin token: ``CURRICULUM_API_TOKEN``, or the contents of the file named by
    ``CURRICULUM_API_TOKEN_FILE``; None when neither is set."""
    token = os.environ.get("CURRICULUM_API_TOKEN")
    path = os.environ.get("CURRICULUM_API_TOKEN_FILE")
    if not token and path:
        with open(path) as f:
            token = f.read().strip()
    return token or None


class TokenBook(Protocol):
    """Where the service keeps its scoped tokens (an in-process table, or a Ray actor's)."""

    async def entries(self) -> list[tuple[str, Grant]]:
        """Every token as ``(sha256, grant)``."""

    async def create(self, role: str, run: str | None, prefix: str | None, name: str) -> tuple[str, Grant]:
        """A new token's secret and grant."""

    async def revoke(self, token_id: str) -> Grant:
        """Forget a token; :class:`NotFound` when there is none."""


class LocalTokens:
    """Tokens in an in-process :class:`TokenTable` (tests, notebooks, a single-process server)."""

    def __init__(self, table: TokenTable | None = None) -> None:
        self.table = table if table is not None else TokenTable()

    async def entries(self) -> list[tuple[str, Grant]]:
        return self.table.entries()

    async def create(self, role: str, run: str | None, prefix: str | None, name: str) -> tuple[str, Grant]:
        return self.table.create(role, run=run, prefix=prefix, name=name)

    async def revoke(self, token_id: str) -> Grant:
        return self.table.revoke(token_id)


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, Unauthorized, headers={"WWW-Authenticate": "Bearer"})


class Guards:
    """The authorization dependencies of an app's routes, over one token book.

    Args:
        token_hash: sha256 of the all-runs admin token (:func:`api_token`), or None.
        book: the scoped tokens.
    """

    run_param: Any = Path(..., min_length=1, max_length=200, description="run name")

    def __init__(self, token_hash: str | None, book: TokenBook) -> None:
        self.book = book
        self._env = [(token_hash, ENV_GRANT)] if token_hash else []
        self._bearer = HTTPBearer(auto_error=False, scheme_name=SCHEME, description="an API token")
        self._cached: list[tuple[str, Grant]] = []
        self._cached_at = -float("inf")
        self._lock = asyncio.Lock()

    async def entries(self) -> list[tuple[str, Grant]]:
        """The scoped tokens, as fresh as :data:`TOKEN_CACHE_S`."""
        async with self._lock:
            if time.monotonic() - self._cached_at > TOKEN_CACHE_S:
                self._cached = await self.book.entries()
                self._cached_at = time.monotonic()
            return self._cached

    def forget(self) -> None:
        """Read the token book again on the next request (after a create or revoke through here)."""
        self._cached_at = -float("inf")

    async def grant_of(self, secret: str) -> Grant | None:
        """The grant of token ``secret``, None for an unknown one."""
        return find(self._env + await self.entries(), secret)

    def _require(self, role: str | None, scope: str, page: bool = False) -> list[Any]:
        """``role``: None only identifies the caller; ``scope``: "path" (the run in the path), "all"
        (every run) or "any" (whatever runs the token reaches; the route filters); ``page``: a
        dashboard page, which also takes the sign-in cookie and sends a caller without a token to
        the sign-in form."""

        async def authorize(
            request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(self._bearer)
        ) -> None:
            if credentials is None and page and request.cookies.get(COOKIE):
                credentials = HTTPAuthorizationCredentials(
                    scheme="Bearer", credentials=request.cookies[COOKIE]
                )
            try:
                scoped = await asyncio.wait_for(self.entries(), CALL_TIMEOUT_S)
            except Exception as e:
                if role is None:  # identification only (health): an anonymous caller who sees no run
                    request.state.grant, request.state.private = None, True
                    return
                logger.error("cannot read the token table", exc_info=e)
                raise HTTPException(503, "the service cannot check tokens now; try again") from None
            grant = find(self._env + scoped, credentials.credentials) if credentials else None
            request.state.grant, request.state.private = grant, bool(scoped)
            if role is None or (grant is None and credentials is None and role == "read" and not scoped):
                return  # identification only, or an anonymous read while no scoped token exists
            if grant is None:
                if page:
                    where = quote(request.url.path, safe="/")
                    raise HTTPException(303, "sign in", headers={"Location": f"/login?next={where}"})
                if not (self._env or scoped):
                    raise _unauthorized(
                        "no API token is configured, so this route is disabled: set "
                        "CURRICULUM_API_TOKEN or create one (curriculum token create)"
                    )
                raise _unauthorized("missing or unknown bearer token (Authorization: Bearer <token>)")
            if not grant.allows(role):
                raise ApiError(
                    403,
                    f"token {grant.id} has the role {grant.role}; this needs {role} ({ROLE_DOES[role]})",
                    Forbidden,
                )
            run = request.path_params.get("run") if scope == "path" else None
            if scope != "any" and not grant.covers(run):
                what = f"run {run!r}" if run is not None else "all runs"
                raise ApiError(403, f"token {grant.id} reaches {grant.scope}, not {what}", Forbidden)

        return [Depends(authorize)]

    def train(self) -> list[Any]:
        return self._require("train", "path")

    def admin(self) -> list[Any]:
        return self._require("admin", "path")

    def create(self) -> list[Any]:
        """Any admin token; the route checks the run or token it names (:meth:`check`,
        :meth:`Grant.contains <scorer_service.core.tokens.Grant.contains>`)."""
        return self._require("admin", "any")

    def identify(self) -> dict[str, Any]:
        """The route arguments of a route open to all that names what the caller may read."""
        return {"dependencies": self._require(None, "any"), "openapi_extra": {"security": [{}]}}

    @staticmethod
    def check(request: Request, run: str) -> None:
        """403 unless the caller's token (admin, from :meth:`create`) reaches ``run``."""
        grant: Grant = request.state.grant
        if not grant.covers(run):
            raise ApiError(403, f"token {grant.id} reaches {grant.scope}, not run {run!r}", Forbidden)

    @staticmethod
    def visible(request: Request, runs: Iterable[str]) -> list[str]:
        """The runs the caller may see: all of them for an anonymous read while no scoped token
        exists, none for an anonymous caller otherwise, else those its token reaches."""
        grant: Grant | None = request.state.grant
        if grant is None:
            return [] if request.state.private else list(runs)
        return [run for run in runs if grant.covers(run)]

    def reads(self, scope: str = "path") -> dict[str, Any]:
        """The route arguments of a read: its dependency, and the OpenAPI security that says a token
        may be needed (once the service holds scoped tokens) besides the bearer scheme."""
        return {"dependencies": self._require("read", scope), "openapi_extra": {"security": [{}]}}

    def pages(self, scope: str = "path") -> list[Any]:
        """The dependency of a dashboard page: a read that also takes the sign-in cookie. Only pages
        take it: an API route never acts on a browser's cookie, so no other site can make one act."""
        return self._require("read", scope, page=True)

    @staticmethod
    def hash(token: str | None) -> str | None:
        return hash_token(token) if token else None

"""``/v1/tokens``: create, list and revoke scoped API tokens without a restart. An ``admin`` token
manages the tokens inside its own scope (a team's prefix admin mints and revokes its team's tokens);
tokens outside it are neither listed nor revocable (404, as if absent). A new token's secret is in
the creating answer only; the service keeps its hash."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Path, Request

from scorer_service.core.errors import Forbidden, InvalidQuery, NotFound
from scorer_service.core.tokens import Grant
from scorer_service.web.auth import Guards
from scorer_service.web.directory import ApiError, one_line
from scorer_service.web.links import follow
from scorer_service.web.models import CreateToken, NewToken, TokenInfo, errors

T = TypeVar("T")
logger = logging.getLogger(__name__)


async def _ask(answer: Awaitable[T]) -> T:
    """The token book's answer; its refusals as 400 / 404 with their message, a book that cannot
    answer as a 503 (logged here)."""
    try:
        return await answer
    except InvalidQuery as e:
        raise ApiError(400, one_line(str(e)), InvalidQuery) from None
    except NotFound as e:
        raise ApiError(404, one_line(str(e)), NotFound) from None
    except Exception as e:
        logger.error("the token table failed", exc_info=e)
        raise HTTPException(503, "the service cannot change or list tokens now; try again") from None


def add_token_routes(app: FastAPI, guards: Guards) -> None:
    admin = guards.create()

    @app.post(
        "/v1/tokens",
        status_code=201,
        response_model=NewToken,
        responses=errors(400, 401, 403, 422, 503)
        | {201: {"links": follow("token_id", "id", ("delete", "/v1/tokens/{token_id}"))}},
        dependencies=admin,
    )
    async def create_token(request: Request, spec: CreateToken) -> dict[str, Any]:
        """A new token with ``role`` on run ``run``, on runs named ``prefix``..., or on all runs,
        inside the scope of the admin token that asks."""
        mine: Grant = request.state.grant
        try:
            asked = Grant("new", spec.role, spec.run, spec.prefix, spec.name)
        except InvalidQuery as e:
            raise ApiError(400, one_line(str(e)), InvalidQuery) from None
        if not mine.contains(asked):
            raise ApiError(403, f"token {mine.id} reaches {mine.scope}, not {asked.scope}", Forbidden)
        secret, grant = await _ask(guards.book.create(spec.role, spec.run, spec.prefix, spec.name))
        guards.forget()
        return {**dataclasses.asdict(grant), "token": secret}

    @app.get(
        "/v1/tokens", response_model=list[TokenInfo], responses=errors(401, 403, 503), dependencies=admin
    )
    async def list_tokens(request: Request) -> list[dict[str, Any]]:
        """The id, role, scope, name and creation time of every token inside the caller's scope
        (never a secret or hash)."""
        mine: Grant = request.state.grant
        grants = sorted((g for _, g in await _ask(guards.book.entries())), key=lambda g: (g.created, g.id))
        return [dataclasses.asdict(g) for g in grants if mine.contains(g)]

    @app.delete(
        "/v1/tokens/{token_id}",
        response_model=TokenInfo,
        responses=errors(401, 403, 404, 422, 503),
        dependencies=admin,
    )
    async def revoke_token(
        request: Request, token_id: str = Path(..., min_length=1, max_length=100)
    ) -> dict[str, Any]:
        """Revoke a token inside the caller's scope: it stops working on this replica at once, on the
        others within a second."""
        mine: Grant = request.state.grant
        if not any(g.id == token_id and mine.contains(g) for _, g in await _ask(guards.book.entries())):
            raise ApiError(404, f"no token {token_id!r}", NotFound)  # one outside the scope is not told
        grant = await _ask(guards.book.revoke(token_id))
        guards.forget()
        return dataclasses.asdict(grant)

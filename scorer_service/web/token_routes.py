"""``/v1/tokens``: create, list and revoke scoped API tokens without a restart (an all-runs
``admin`` token). A new token's secret is in the creating answer only; the service keeps its hash."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Path

from scorer_service.core.errors import InvalidQuery, NotFound
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
    admin = guards.admin_all()

    @app.post(
        "/v1/tokens",
        status_code=201,
        response_model=NewToken,
        responses=errors(400, 401, 403, 422, 503)
        | {201: {"links": follow("token_id", "id", ("delete", "/v1/tokens/{token_id}"))}},
        dependencies=admin,
    )
    async def create_token(spec: CreateToken) -> dict[str, Any]:
        """A new token with ``role`` on run ``run``, on runs named ``prefix``..., or on all runs."""
        secret, grant = await _ask(guards.book.create(spec.role, spec.run, spec.prefix, spec.name))
        guards.forget()
        return {**dataclasses.asdict(grant), "token": secret}

    @app.get(
        "/v1/tokens", response_model=list[TokenInfo], responses=errors(401, 403, 503), dependencies=admin
    )
    async def list_tokens() -> list[dict[str, Any]]:
        """Every token's id, role, scope, name and creation time (never a secret or hash)."""
        entries = await _ask(guards.book.entries())
        return [dataclasses.asdict(g) for _, g in sorted(entries, key=lambda e: (e[1].created, e[1].id))]

    @app.delete(
        "/v1/tokens/{token_id}",
        response_model=TokenInfo,
        responses=errors(401, 403, 404, 422, 503),
        dependencies=admin,
    )
    async def revoke_token(token_id: str = Path(..., min_length=1, max_length=100)) -> dict[str, Any]:
        """Revoke a token: it stops working on this replica at once, on the others within a second."""
        grant = await _ask(guards.book.revoke(token_id))
        guards.forget()
        return dataclasses.asdict(grant)

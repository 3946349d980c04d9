"""The bearer token that guards every route that changes state (admin and trainer routes)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


def api_token() -> str | None:
    """The bearer token that state-changing endpoints require: ``CURRICULUM_API_TOKEN``, or the
    contents of the file named by ``CURRICULUM_API_TOKEN_FILE``; None disables those endpoints."""
    token = os.environ.get("CURRICULUM_API_TOKEN")
    path = os.environ.get("CURRICULUM_API_TOKEN_FILE")
    if not token and path:
        with open(path) as f:
            token = f.read().strip()
    return token or None


def bearer_guard(token: str | None) -> Callable[..., None]:
    """A route dependency: 401 when the request does not carry the token (whenever none is configured:
    the OpenAPI document declares the token required, so a request without it is always a 401)."""
    bearer = HTTPBearer(auto_error=False, description="CURRICULUM_API_TOKEN")

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not token:  # an empty token would match a request without one
            raise HTTPException(
                401,
                "state-changing endpoints are disabled: set CURRICULUM_API_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return authorize

"""Bearer-token checks for the routes that change state (admin and trainer routes)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from fastapi import HTTPException, Request


def api_token() -> str | None:
    """The bearer token that state-changing endpoints require: ``CURRICULUM_API_TOKEN``, or the
    contents of the file named by ``CURRICULUM_API_TOKEN_FILE``; None disables those endpoints."""
    token = os.environ.get("CURRICULUM_API_TOKEN")
    path = os.environ.get("CURRICULUM_API_TOKEN_FILE")
    if not token and path:
        with open(path) as f:
            token = f.read().strip()
    return token or None


def bearer_guard(token: str | None) -> Callable[[Request], None]:
    """A check that raises 403 when no token is configured and 401 when the request lacks it."""

    def authorize(request: Request) -> None:
        if token is None:
            raise HTTPException(403, "state-changing endpoints are disabled: set CURRICULUM_API_TOKEN")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token")

    return authorize

"""The web application: the REST routes, dashboard, export and Prometheus metrics over one directory.

Every error answer, whoever raises it (a route, FastAPI's parameter validation, the router), is
``{"detail": "<one line>"}``, plus ``"type"``: the exception class behind it where it has one (a
parameter outside its declared range, or one the route does not declare, is an ``InvalidQuery``); a
405 names every method the path has in ``Allow``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from scorer_service.core.errors import InvalidQuery
from scorer_service.web.auth import Guards, LocalTokens, TokenBook, api_token
from scorer_service.web.dashboard import ImageSource, add_dashboard
from scorer_service.web.directory import StoreDirectory, one_line
from scorer_service.web.export import add_export
from scorer_service.web.label_issues import add_label_issue_routes
from scorer_service.web.lifecycle import add_lifecycle_routes
from scorer_service.web.prometheus import add_metrics
from scorer_service.web.routes import add_score_routes
from scorer_service.web.token_routes import add_token_routes
from scorer_service.web.trainer_routes import add_trainer_routes


def build_app(
    directory: StoreDirectory,
    token: str | None = None,
    *,
    tokens: TokenBook | None = None,
    token_hash: str | None = None,
    images: ImageSource | None = None,
) -> FastAPI:
    """The FastAPI application over ``directory``.

    Args:
        directory: where the runs' stores are.
        token: the all-runs admin token (default: :func:`~.auth.api_token`; "" for none).
        tokens: the scoped tokens (default: an empty in-process table).
        token_hash: the all-runs admin token as its sha256, in place of ``token``.
        images: lets the dashboard show training samples (default: none).

    Example::

        app = build_app(LocalDirectory({"r": store}), token="s3cret")
    """
    app = FastAPI(
        title="curriculum",
        version="0.1.0",
        description="Per-sample hardness scores and round subsets of curriculum-learning runs.",
        dependencies=[Depends(_known_query)],
    )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # The router answers with the methods of the first route of the path; a path has several.
            headers["Allow"] = ", ".join(_methods(app, request))
        body = {"detail": one_line(exc.detail)}
        error_type = getattr(exc, "error_type", None)  # the store error's class name, where one caused it
        if error_type:
            body["type"] = error_type
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where, *name = first["loc"]
        what = f"{where} parameter {'.'.join(map(str, name))}" if name else str(where)
        body = {"detail": one_line(f"{what}: {first['msg']}"), "type": InvalidQuery.__name__}
        return JSONResponse(body, status_code=422)

    if token_hash is None:
        token_hash = Guards.hash(token if token is not None else api_token())
    guards = Guards(token_hash, tokens if tokens is not None else LocalTokens())
    add_lifecycle_routes(app, directory, guards)
    add_score_routes(app, directory, guards)
    add_dashboard(app, directory, guards, images)
    add_metrics(app, directory, guards)
    add_export(app, directory, guards)
    add_label_issue_routes(app, directory, guards)
    add_trainer_routes(app, directory, guards)
    add_token_routes(app, guards)
    return app


async def _known_query(request: Request) -> None:
    """A query parameter the route does not declare is a 422 naming it: a misspelt option must not be
    ignored silently."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        msg = "is not a parameter of this route"
        raise RequestValidationError([{"loc": ("query", unknown[0]), "msg": msg, "type": "extra_forbidden"}])


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of ``app`` answers on the request's path."""
    found: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method does not
        if match != Match.NONE:
            found |= getattr(route, "methods", None) or set()
    return sorted(found)

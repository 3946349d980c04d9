"""The web application: the REST routes, dashboard, export and Prometheus metrics over one directory."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from scorer_service.web.dashboard import ImageSource, add_dashboard
from scorer_service.web.directory import StoreDirectory
from scorer_service.web.export import add_export
from scorer_service.web.label_issues import add_label_issue_routes
from scorer_service.web.prometheus import add_metrics
from scorer_service.web.routes import add_admin_routes, add_score_routes, api_token
from scorer_service.web.trainer_routes import add_trainer_routes


def build_app(
    directory: StoreDirectory, token: str | None = None, *, images: ImageSource | None = None
) -> FastAPI:
    """The FastAPI application over ``directory``.

    ``token`` guards the state-changing routes (default: :func:`~.routes.api_token`); ``images``
    lets the dashboard show training samples (default: none).
    """
    app = FastAPI(
        title="curriculum",
        version="0.1.0",
        description="Per-sample hardness scores and round subsets of curriculum-learning runs.",
    )

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    add_score_routes(app, directory)
    add_dashboard(app, directory, images)
    add_metrics(app, directory)
    add_export(app, directory)
    add_label_issue_routes(app, directory)
    token = token if token is not None else api_token()
    add_admin_routes(app, directory, token)
    add_trainer_routes(app, directory, token)
    return app

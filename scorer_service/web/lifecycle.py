"""A run's life over REST: create, list with filters, snapshot, delete.

Creating a run goes through the same checks as ``curriculum.create_run`` (the directory builds the
configuration with :func:`scorer_service.config.run_config`): an unknown setting or a value out of
range is a 400 of type ``ValueError`` with the same message, a live run of that name a 409 of type
``RunExists`` naming it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request

from scorer_service.core.errors import Conflict, InvalidBatch, InvalidQuery, NotFound
from scorer_service.core.wire import answers
from scorer_service.core.wire.interface import StoreInterface
from scorer_service.web.auth import Guards
from scorer_service.web.directory import (
    CALL_TIMEOUT_S,
    ApiError,
    StoreDirectory,
    call_store,
    http_error,
    one_line,
)
from scorer_service.web.links import RUN_ROUTES, follow
from scorer_service.web.models import CreateRun, Deleted, RunInfo, RunSummary, SnapshotTaken, errors

# Creating a store starts actors (one per shard) and may restore nothing; it is slower than a call.
CREATE_TIMEOUT_S = 60.0

logger = logging.getLogger(__name__)


def add_lifecycle_routes(app: FastAPI, directory: StoreDirectory, guards: Guards) -> None:
    """``POST /v1/runs``, ``GET /v1/runs``, ``POST /v1/runs/{run}/snapshot``, ``DELETE /v1/runs/{run}``."""

    @app.get(
        "/v1/runs",
        response_model=list[RunSummary],  # type: ignore[valid-type]  # a model made at import time
        responses=errors(401, 422, 503),
        **guards.reads("any"),
    )
    async def list_runs(
        request: Request,
        state: answers.RunState | None = Query(None, description="only runs in this state"),
        method: str | None = Query(None, max_length=200, description="only runs of this selector"),
        prefix: str | None = Query(None, max_length=200, description="only runs whose name starts so"),
    ) -> list[answers.RunSummary]:
        """Every run the caller may read, with its state, size, method, rounds and ingested count."""
        try:
            names = await asyncio.wait_for(directory.runs(), CALL_TIMEOUT_S)
        except Exception as e:
            logger.exception("cannot list the runs")
            raise HTTPException(503, "cannot list the runs of the cluster now; try again") from e
        out = []
        for run in guards.visible(request, names):
            if prefix is not None and not run.startswith(prefix):
                continue
            try:
                info = await call_store(directory, run, StoreInterface.info)
            except HTTPException:
                continue  # a run deleted between listing and asking
            if (state is None or info.state == state) and (method is None or info.method == method):
                out.append(info.summary())
        return out

    @app.post(
        "/v1/runs",
        status_code=201,
        response_model=RunInfo,
        responses=errors(400, 401, 403, 409, 422, 500, 503)
        | {201: {"links": follow("run", "run", *RUN_ROUTES)}},
        dependencies=guards.create(),
    )
    async def create_run(request: Request, spec: CreateRun) -> answers.RunInfo:
        """Create the store of a new run (the settings of ``curriculum.create_run``); 409 while a run
        of that name is live, unless ``replace`` (an ``admin`` token that reaches the name)."""
        guards.check(request, spec.name)
        try:
            await asyncio.wait_for(
                directory.create(spec.name, spec.n, spec.num_classes, spec.replace, dict(spec.settings)),
                CREATE_TIMEOUT_S,
            )
        except (Conflict, InvalidQuery, InvalidBatch, NotFound) as e:
            raise http_error(e, spec.name) from None
        except ValueError as e:  # the settings create_run refuses, with its message
            raise ApiError(400, one_line(str(e)), ValueError) from None
        except TimeoutError:
            raise HTTPException(
                503, f"run {spec.name!r} was not created within {CREATE_TIMEOUT_S:g} s"
            ) from None
        except Exception as e:
            raise http_error(e, spec.name) from None
        return await call_store(directory, spec.name, StoreInterface.info)

    @app.post(
        "/v1/runs/{run}/snapshot",
        status_code=201,
        response_model=SnapshotTaken,
        dependencies=guards.admin(),
        responses=errors(401, 403, 404, 409, 422, 500, 503),
    )
    async def force_snapshot(run: str = guards.run_param) -> dict[str, Any]:
        """Write a snapshot of the run's store now (an ``admin`` token for the run)."""
        return {"run": run, "snapshot": await call_store(directory, run, StoreInterface.snapshot)}

    @app.delete(
        "/v1/runs/{run}",
        response_model=Deleted,
        dependencies=guards.admin(),
        responses=errors(401, 403, 404, 422, 500, 503),
    )
    async def delete_run(run: str = guards.run_param) -> dict[str, Any]:
        """Stop the run's store; its snapshots stay on disk (an ``admin`` token for the run)."""
        try:
            await asyncio.wait_for(directory.delete(run), CALL_TIMEOUT_S)
        except Exception as e:
            raise http_error(e, run) from None
        return {"run": run, "deleted": True}

"""The REST routes over a :class:`~scorer_service.web.directory.StoreDirectory`.

Bad parameters are 4xx with a one-line message, unknown runs, samples and rounds are 404, and a store
that does not answer in time is a 503, never a hang. Every route declares its answer's model and
every error status it can return. Reads are open; the routes that change state need a bearer token
(:func:`~scorer_service.web.auth.api_token`) and are refused outright when none is configured.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query

from scorer_service.core.state import METRICS
from scorer_service.web.auth import bearer_guard
from scorer_service.web.directory import CALL_TIMEOUT_S, StoreDirectory, call_store, http_error
from scorer_service.web.models import (
    MAX_INT,
    STORE_ERRORS,
    Deleted,
    Health,
    Histogram,
    RoundSummary,
    RunInfo,
    RunSummary,
    Sample,
    SnapshotTaken,
    Subset,
    TopEntry,
    errors,
)

MAX_IDS = 1000
MAX_K = 10_000
MAX_BINS = 1000
MAX_LIMIT = 10_000
# /v1/health asks every store at once and answers within this, however many runs there are.
HEALTH_DEADLINE_S = CALL_TIMEOUT_S

RunName = Path(..., min_length=1, max_length=200, description="run name")
Metric = Literal[METRICS]  # type: ignore[valid-type]
# Up to MAX_IDS comma-separated integers of up to 20 digits (optionally signed, spaces allowed).
IDS_PATTERN = rf"^ *[-+]?[0-9]{{1,20}} *(, *[-+]?[0-9]{{1,20}} *){{0,{MAX_IDS - 1}}},? *$"

logger = logging.getLogger(__name__)


def add_score_routes(app: FastAPI, directory: StoreDirectory) -> None:
    """The read-only API: health, runs, samples, top, histogram, rounds and their subsets."""

    async def call(run: str, method: str, *args: Any) -> Any:
        return await call_store(directory, run, method, *args)

    @app.get("/v1/health", response_model=Health)
    async def health() -> dict[str, Any]:
        """Whether the API can reach the cluster and each run's store (asked at once, one deadline)."""
        deadline = asyncio.get_running_loop().time() + HEALTH_DEADLINE_S
        try:
            runs = await asyncio.wait_for(directory.runs(), HEALTH_DEADLINE_S)
        except Exception:  # the health check reports failures instead of raising them
            logger.exception("cannot list the runs")
            return {"status": "degraded", "store_reachable": False, "runs": [], "error": "cannot list runs"}
        asks = {asyncio.ensure_future(directory.call(run, "info")): run for run in runs}
        remaining = deadline - asyncio.get_running_loop().time()
        done = (await asyncio.wait(asks, timeout=max(remaining, 0.0)))[0] if asks else set()
        for task in asks.keys() - done:
            task.cancel()
        down = sorted(run for task, run in asks.items() if task not in done or task.exception() is not None)
        status = "degraded" if down else "ok"
        return {"status": status, "store_reachable": not down, "runs": runs, "unreachable": down}

    @app.get("/v1/runs", response_model=list[RunSummary], responses=errors(503))
    async def runs() -> list[dict[str, Any]]:
        """Every run with its size, method, rounds and ingested count."""
        try:
            names = await asyncio.wait_for(directory.runs(), CALL_TIMEOUT_S)
        except Exception as e:
            logger.exception("cannot list the runs")
            raise HTTPException(503, "cannot list the runs of the cluster now; try again") from e
        out = []
        for run in names:
            try:
                info = await call(run, "info")
            except HTTPException:
                continue  # a run deleted between listing and asking
            out.append({k: v for k, v in info.items() if k != "config"})
        return out

    @app.get("/v1/runs/{run}", response_model=RunInfo, responses=errors(404, 422, 500, 503))
    async def run_info(run: str = RunName) -> dict[str, Any]:
        """One run's configuration and counters."""
        return await call(run, "info")

    @app.get("/v1/runs/{run}/samples/{sample_id}", response_model=Sample, responses=STORE_ERRORS)
    async def sample(
        run: str = RunName, sample_id: int = Path(..., description="sample id")
    ) -> dict[str, Any]:
        """Every score column of one sample."""
        return (await call(run, "samples", [sample_id]))[0]

    @app.get("/v1/runs/{run}/samples", response_model=list[Sample], responses=STORE_ERRORS)
    async def samples(
        run: str = RunName,
        ids: str = Query(..., pattern=IDS_PATTERN, description=f"up to {MAX_IDS} comma-separated ids"),
    ) -> list[dict[str, Any]]:
        """Every score column of up to 1000 samples."""
        return await call(run, "samples", [int(x) for x in ids.split(",") if x.strip()])

    @app.get("/v1/runs/{run}/top", response_model=list[TopEntry], responses=STORE_ERRORS)
    async def top(
        run: str = RunName,
        metric: Metric = Query("dih", description="the score to rank by"),
        k: int = Query(50, ge=1, le=MAX_K),
        order: Literal["asc", "desc"] = "desc",
    ) -> list[dict[str, Any]]:
        """The hardest (``desc``) or easiest (``asc``) samples by ``metric``."""
        return await call(run, "top", metric, k, order)

    @app.get("/v1/runs/{run}/histogram", response_model=Histogram, responses=STORE_ERRORS)
    async def histogram(
        run: str = RunName,
        metric: Metric = Query("dih", description="the score to count"),
        bins: int = Query(20, ge=1, le=MAX_BINS),
    ) -> dict[str, Any]:
        """The distribution of ``metric`` over all samples."""
        return await call(run, "histogram", metric, bins)

    @app.get("/v1/runs/{run}/rounds", response_model=list[RoundSummary], responses=errors(404, 422, 500, 503))
    async def rounds(run: str = RunName) -> list[dict[str, Any]]:
        """Each round: size, selector, selection time, ingested samples and training metrics."""
        return await call(run, "round_summaries")

    @app.get("/v1/runs/{run}/rounds/{round_}/subset", response_model=Subset, responses=STORE_ERRORS)
    async def subset(
        run: str = RunName,
        round_: int = Path(..., ge=0, description="round"),
        offset: int = Query(0, ge=0, le=MAX_INT),
        limit: int = Query(1000, ge=1, le=MAX_LIMIT),
    ) -> dict[str, Any]:
        """The ids trained on in round ``round_``, paged by ``offset`` / ``limit``."""
        return await call(run, "round_subset", round_, offset, limit)


def add_admin_routes(app: FastAPI, directory: StoreDirectory, token: str | None) -> None:
    """The routes that change state, behind ``Authorization: Bearer <token>``."""
    guard = [Depends(bearer_guard(token))]
    admin = {"dependencies": guard, "responses": errors(401, 403, 404, 422, 500, 503)}

    @app.post(
        "/v1/runs/{run}/snapshot",
        status_code=201,
        response_model=SnapshotTaken,
        dependencies=admin["dependencies"],
        responses=errors(401, 403, 404, 409, 422, 500, 503),
    )
    async def force_snapshot(run: str = RunName) -> dict[str, Any]:
        """Write a snapshot of the run's store now (bearer token required)."""
        return {"run": run, "snapshot": await call_store(directory, run, "snapshot")}

    @app.delete("/v1/runs/{run}", response_model=Deleted, **admin)
    async def delete_run(run: str = RunName) -> dict[str, Any]:
        """Stop the run's store; its snapshots stay on disk (bearer token required)."""
        try:
            await asyncio.wait_for(directory.delete(run), CALL_TIMEOUT_S)
        except Exception as e:
            raise http_error(e, run) from None
        return {"run": run, "deleted": True}

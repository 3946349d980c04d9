"""The REST routes over a :class:`~scorer_service.web.directory.StoreDirectory`.

Bad parameters are 4xx with a message, unknown runs, samples and rounds are 404, and a store that
does not answer in time is a 503, never a hang. Reads are open; the routes that change state need
a bearer token (:func:`api_token`) and are refused outright when none is configured.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request

from scorer_service.core.state import METRICS
from scorer_service.web.directory import CALL_TIMEOUT_S, StoreDirectory, call_store, error_message

MAX_IDS = 1000
MAX_K = 10_000
MAX_BINS = 1000
MAX_LIMIT = 10_000

RunName = Path(..., min_length=1, max_length=200, description="run name")


def api_token() -> str | None:
    """The bearer token that state-changing endpoints require: ``CURRICULUM_API_TOKEN``, or the
    contents of the file named by ``CURRICULUM_API_TOKEN_FILE``; None disables those endpoints."""
    token = os.environ.get("CURRICULUM_API_TOKEN")
    path = os.environ.get("CURRICULUM_API_TOKEN_FILE")
    if not token and path:
        with open(path) as f:
            token = f.read().strip()
    return token or None


def add_score_routes(app: FastAPI, directory: StoreDirectory) -> None:
    """The read-only API: health, runs, samples, top, histogram, rounds and their subsets."""

    async def call(run: str, method: str, *args: Any) -> Any:
        return await call_store(directory, run, method, *args)

    Metric = Query("dih", description=f"one of {', '.join(METRICS)}")

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        """Whether the API can reach the cluster and each run's store."""
        try:
            runs = await asyncio.wait_for(directory.runs(), CALL_TIMEOUT_S)
        except Exception as e:  # the health check reports failures instead of raising them
            return {"status": "degraded", "store_reachable": False, "runs": [], "error": error_message(e)}
        reachable = True
        for run in runs:
            try:
                await asyncio.wait_for(directory.call(run, "info"), CALL_TIMEOUT_S)
            except Exception:
                reachable = False
        return {"status": "ok" if reachable else "degraded", "store_reachable": reachable, "runs": runs}

    @app.get("/v1/runs")
    async def runs() -> list[dict[str, Any]]:
        """Every run with its size, method, rounds and ingested count."""
        out = []
        for run in await directory.runs():
            try:
                info = await call(run, "info")
            except HTTPException:
                continue  # a run deleted between listing and asking
            out.append({k: v for k, v in info.items() if k != "config"})
        return out

    @app.get("/v1/runs/{run}")
    async def run_info(run: str = RunName) -> dict[str, Any]:
        """One run's configuration and counters."""
        return await call(run, "info")

    @app.get("/v1/runs/{run}/samples/{sample_id}")
    async def sample(
        run: str = RunName, sample_id: int = Path(..., description="sample id")
    ) -> dict[str, Any]:
        """Every score column of one sample."""
        return (await call(run, "samples", [sample_id]))[0]

    @app.get("/v1/runs/{run}/samples")
    async def samples(
        run: str = RunName, ids: str = Query(..., max_length=20 * MAX_IDS, description="comma-separated ids")
    ) -> list[dict[str, Any]]:
        """Every score column of up to 1000 samples."""
        try:
            parsed = [int(x) for x in ids.split(",") if x.strip()]
        except ValueError:
            raise HTTPException(400, f"ids must be comma-separated integers, got {ids[:50]!r}") from None
        if not parsed:
            raise HTTPException(400, "ids is empty")
        if len(parsed) > MAX_IDS:
            raise HTTPException(400, f"at most {MAX_IDS} ids per request, got {len(parsed)}")
        return await call(run, "samples", parsed)

    @app.get("/v1/runs/{run}/top")
    async def top(
        run: str = RunName,
        metric: str = Metric,
        k: int = Query(50, ge=1, le=MAX_K),
        order: Literal["asc", "desc"] = "desc",
    ) -> list[dict[str, Any]]:
        """The hardest (``desc``) or easiest (``asc``) samples by ``metric``."""
        return await call(run, "top", metric, k, order)

    @app.get("/v1/runs/{run}/histogram")
    async def histogram(
        run: str = RunName, metric: str = Metric, bins: int = Query(20, ge=1, le=MAX_BINS)
    ) -> dict[str, Any]:
        """The distribution of ``metric`` over all samples."""
        return await call(run, "histogram", metric, bins)

    @app.get("/v1/runs/{run}/rounds")
    async def rounds(run: str = RunName) -> list[dict[str, Any]]:
        """Each round: size, selector, selection time, ingested samples and training metrics."""
        return await call(run, "round_summaries")

    @app.get("/v1/runs/{run}/rounds/{round_}/subset")
    async def subset(
        run: str = RunName,
        round_: int = Path(..., ge=0, description="round"),
        offset: int = Query(0, ge=0),
        limit: int = Query(1000, ge=1, le=MAX_LIMIT),
    ) -> dict[str, Any]:
        """The ids trained on in round ``round_``, paged by ``offset`` / ``limit``."""
        return await call(run, "round_subset", round_, offset, limit)


def add_admin_routes(app: FastAPI, directory: StoreDirectory, token: str | None) -> None:
    """The routes that change state, behind ``Authorization: Bearer <token>``."""

    def authorize(request: Request) -> None:
        if token is None:
            raise HTTPException(403, "state-changing endpoints are disabled: set CURRICULUM_API_TOKEN")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token")

    @app.post("/v1/runs/{run}/snapshot", status_code=201)
    async def force_snapshot(request: Request, run: str = RunName) -> dict[str, Any]:
        """Write a snapshot of the run's store now (bearer token required)."""
        authorize(request)
        return {"run": run, "snapshot": await call_store(directory, run, "snapshot")}

    @app.delete("/v1/runs/{run}")
    async def delete_run(request: Request, run: str = RunName) -> dict[str, Any]:
        """Stop the run's store; its snapshots stay on disk (bearer token required)."""
        authorize(request)
        try:
            await asyncio.wait_for(directory.delete(run), CALL_TIMEOUT_S)
        except KeyError as e:
            raise HTTPException(404, error_message(e)) from None
        return {"run": run, "deleted": True}

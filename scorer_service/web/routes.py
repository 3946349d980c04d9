"""The REST routes over a :class:`~scorer_service.web.directory.StoreDirectory`.

Bad parameters are 4xx with a one-line message, unknown runs, samples and rounds are 404, and a store
that does not answer in time is a 503, never a hang. Every route declares its answer's model and
every error status it can return. Who may call which route: :mod:`scorer_service.web.auth`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import FastAPI, Path, Query, Request

from scorer_service.core.state import METRICS
from scorer_service.core.wire import answers
from scorer_service.core.wire.interface import StoreInterface
from scorer_service.web.auth import Guards
from scorer_service.web.directory import CALL_TIMEOUT_S, P, R, StoreDirectory, StoreMethod, call_store
from scorer_service.web.models import (
    MAX_INT,
    READ_STORE_ERRORS,
    Health,
    Histogram,
    RoundSummary,
    RunInfo,
    Sample,
    Subset,
    TopEntryJSON,
    errors,
)

MAX_IDS = 1000
MAX_K = 10_000
MAX_BINS = 1000
MAX_LIMIT = 10_000
# /v1/health asks every store at once and answers within this, however many runs there are.
HEALTH_DEADLINE_S = CALL_TIMEOUT_S

READ_ERRORS = errors(401, 403, 404, 422, 500, 503)
RunName = Path(..., min_length=1, max_length=200, description="run name")
Metric = Literal[METRICS]  # type: ignore[valid-type]
# Up to MAX_IDS comma-separated integers of up to 20 digits (optionally signed, spaces allowed).
IDS_PATTERN = rf"^ *[-+]?[0-9]{{1,20}} *(, *[-+]?[0-9]{{1,20}} *){{0,{MAX_IDS - 1}}},? *$"

logger = logging.getLogger(__name__)


def add_score_routes(app: FastAPI, directory: StoreDirectory, guards: Guards) -> None:
    """The read-only API: health, a run's info, samples, top, histogram, rounds and their subsets
    (each needs a ``read`` token for the run once the service holds scoped tokens)."""
    reads = guards.reads()

    async def call(run: str, method: StoreMethod[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await call_store(directory, run, method, *args, **kwargs)

    @app.get("/v1/health", response_model=Health, **guards.identify())
    async def health(request: Request) -> dict[str, Any]:
        """Whether the API can reach the cluster and each run's store (asked at once, one deadline);
        it names only the runs the caller may read."""
        deadline = asyncio.get_running_loop().time() + HEALTH_DEADLINE_S
        try:
            runs = await asyncio.wait_for(directory.runs(), HEALTH_DEADLINE_S)
        except Exception:  # the health check reports failures instead of raising them
            logger.exception("cannot list the runs")
            return {"status": "degraded", "store_reachable": False, "runs": [], "error": "cannot list runs"}
        asks = {asyncio.ensure_future(directory.call(run, StoreInterface.info)): run for run in runs}
        remaining = deadline - asyncio.get_running_loop().time()
        done = (await asyncio.wait(asks, timeout=max(remaining, 0.0)))[0] if asks else set()
        for task in asks.keys() - done:
            task.cancel()
        down = sorted(run for task, run in asks.items() if task not in done or task.exception() is not None)
        status = "degraded" if down else "ok"
        seen = set(guards.visible(request, runs))
        named = {"runs": [r for r in runs if r in seen], "unreachable": [r for r in down if r in seen]}
        return {"status": status, "store_reachable": not down, **named}

    @app.get("/v1/runs/{run}", response_model=RunInfo, responses=READ_ERRORS, **reads)
    async def run_info(run: str = RunName) -> answers.RunInfo:
        """One run's state, configuration and counters."""
        return await call(run, StoreInterface.info)

    @app.get(
        "/v1/runs/{run}/samples/{sample_id}", response_model=Sample, responses=READ_STORE_ERRORS, **reads
    )
    async def sample(run: str = RunName, sample_id: int = Path(..., description="sample id")) -> Any:
        """Every score column of one sample."""
        return (await call(run, StoreInterface.samples, [sample_id]))[0]

    # Sample is a model built from the score columns at import time, which mypy cannot read as a type.
    @app.get(
        "/v1/runs/{run}/samples",
        response_model=list[Sample],  # type: ignore[valid-type]
        responses=READ_STORE_ERRORS,
        **reads,
    )
    async def samples(
        run: str = RunName,
        ids: str = Query(..., pattern=IDS_PATTERN, description=f"up to {MAX_IDS} comma-separated ids"),
    ) -> list[Any]:
        """Every score column of up to 1000 samples."""
        return await call(run, StoreInterface.samples, [int(x) for x in ids.split(",") if x.strip()])

    @app.get("/v1/runs/{run}/top", response_model=list[TopEntryJSON], responses=READ_STORE_ERRORS, **reads)
    async def top(
        run: str = RunName,
        metric: Metric = Query("dih", description="the score to rank by"),
        k: int = Query(50, ge=1, le=MAX_K),
        order: Literal["asc", "desc"] = "desc",
    ) -> list[dict[str, int | float]]:
        """The hardest (``desc``) or easiest (``asc``) samples by ``metric``."""
        return [e.to_json() for e in await call(run, StoreInterface.top, metric, k, order)]

    @app.get("/v1/runs/{run}/histogram", response_model=Histogram, responses=READ_STORE_ERRORS, **reads)
    async def histogram(
        run: str = RunName,
        metric: Metric = Query("dih", description="the score to count"),
        bins: int = Query(20, ge=1, le=MAX_BINS),
    ) -> answers.Histogram:
        """The distribution of ``metric`` over all samples."""
        return await call(run, StoreInterface.histogram, metric, bins)

    @app.get("/v1/runs/{run}/rounds", response_model=list[RoundSummary], responses=READ_ERRORS, **reads)  # type: ignore[valid-type]  # a model made at import time
    async def rounds(run: str = RunName) -> list[answers.RoundSummary]:
        """Each round: size, selector, selection time, ingested samples and training metrics."""
        return await call(run, StoreInterface.round_summaries)

    @app.get(
        "/v1/runs/{run}/rounds/{round_}/subset", response_model=Subset, responses=READ_STORE_ERRORS, **reads
    )
    async def subset(
        run: str = RunName,
        round_: int = Path(..., ge=0, description="round"),
        offset: int = Query(0, ge=0, le=MAX_INT),
        limit: int = Query(1000, ge=1, le=MAX_LIMIT),
    ) -> answers.Subset:
        """The ids trained on in round ``round_``, paged by ``offset`` / ``limit``."""
        return await call(run, StoreInterface.round_subset, round_, offset, limit)

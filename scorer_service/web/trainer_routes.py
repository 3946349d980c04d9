"""Routes for trainers that cannot join the Ray cluster: the same contract as the actor, over HTTP.

A trainer POSTs byproduct batches (an Arrow IPC stream, or JSON for small batches) with the same
``(writer, seq)`` exactly-once semantics and the store's own validation and messages, GETs its
rank's slice of a round, rewinds on a new attempt and records a round's metrics. Every route needs
a ``train`` token for the run.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request

from scorer_service.core.wire.arrow import from_ipc
from scorer_service.core.wire.batch import BATCH_FIELDS, BatchField
from scorer_service.core.wire.interface import StoreInterface
from scorer_service.web.auth import Guards
from scorer_service.web.directory import StoreDirectory, call_store
from scorer_service.web.models import (
    MAX_INT,
    Ingested,
    LossWeights,
    RankSlice,
    Recorded,
    Rewound,
    SampleIds,
    errors,
)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_BODY_BYTES = 256 << 20
ERRORS = errors(400, 401, 403, 404, 422, 500, 503)


def decode_byproducts(body: bytes, content_type: str) -> dict[str, np.ndarray]:
    """A batch's columns from an Arrow IPC stream or a JSON object of lists; 4xx naming the problem."""
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}; send smaller batches")
    kind = content_type.split(";")[0].strip().lower()
    if kind == ARROW_STREAM:
        try:
            return from_ipc(body)
        except Exception as e:  # pyarrow raises several types for bytes that are not a stream
            raise HTTPException(400, f"body is not an Arrow IPC stream: {str(e).splitlines()[0]}") from None
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError as e:
            raise HTTPException(400, f"body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "JSON body must be an object of columns (name -> list)")
        try:
            return {name: np.asarray(values) for name, values in data.items()}
        except ValueError as e:
            raise HTTPException(400, f"JSON columns must be rectangular lists of numbers: {e}") from None
    raise HTTPException(415, f"send {ARROW_STREAM} or application/json, not {kind or 'no content type'}")


def _query(field: BatchField) -> Any:
    """A batch field as a query parameter, bounded as the API bounds every number and name."""
    default = ... if field.default is None else field.default
    if field.type is str:
        return Query(default, min_length=1, max_length=200, description=field.description)
    return Query(default, ge=0, le=MAX_INT if field.type is int else 1e12, description=field.description)


def _batch_fields() -> Callable[..., dict[str, Any]]:
    """A dependency that takes every per-batch field of the wire schema from the query string."""

    def fields(**values: Any) -> dict[str, Any]:
        return values

    params = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_query(f), annotation=f.type)
        for name, f in BATCH_FIELDS.items()
    ]
    fields.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return fields


def add_trainer_routes(app: FastAPI, directory: StoreDirectory, guards: Guards) -> None:
    guard = guards.train()
    run_name = guards.run_param
    body_doc = {
        "requestBody": {
            "required": True,
            "content": {
                ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object", "additionalProperties": {"type": "array"}}},
            },
        }
    }

    @app.post(
        "/v1/runs/{run}/byproducts",
        response_model=Ingested,
        responses=errors(400, 401, 403, 404, 413, 415, 422, 500, 503),
        dependencies=guard,
        openapi_extra=body_doc,
    )
    async def post_byproducts(
        request: Request, run: str = run_name, fields: dict[str, Any] = Depends(_batch_fields())
    ) -> Any:
        """One byproduct batch (columns ``sample_id``, ``loss``, ``step``, ``lr``, optionally ``correct``,
        sketches, ...), validated whole and applied exactly once."""
        columns = decode_byproducts(await request.body(), request.headers.get("content-type", ""))
        return await call_store(directory, run, StoreInterface.ingest, columns | fields)

    # ".../shard" is the route's earlier name, kept for trainers written against it.
    @app.get(
        "/v1/runs/{run}/rounds/{round_}/shard",
        response_model=RankSlice,
        responses=errors(400, 401, 403, 404, 422, 425, 500, 503),
        dependencies=guard,
        deprecated=True,
        summary="Rank slice (earlier name of .../slice)",
    )
    @app.get(
        "/v1/runs/{run}/rounds/{round_}/slice",
        response_model=RankSlice,
        responses=errors(400, 401, 403, 404, 422, 425, 500, 503),
        dependencies=guard,
    )
    async def rank_slice(
        run: str = run_name,
        round_: int = Path(..., ge=0, le=MAX_INT, description="round"),
        rank: int = Query(..., ge=0, le=MAX_INT),
        world_size: int = Query(..., ge=1, le=100_000),
        step: int | None = Query(
            None,
            ge=-1,
            le=MAX_INT,
            description="the rank's newest optimizer step (runs with max_staleness: 425 until "
            "the scores are at most that many steps behind it)",
        ),
    ) -> Any:
        """Rank ``rank``'s equal, disjoint slice of the round's selection (selected on first request)."""
        ids = await call_store(directory, run, StoreInterface.subset, round_, rank, world_size, step)
        return {"round": round_, "rank": rank, "world_size": world_size, "ids": np.asarray(ids).tolist()}

    @app.post("/v1/runs/{run}/loss-weights", response_model=LossWeights, responses=ERRORS, dependencies=guard)
    async def loss_weights(body: SampleIds, run: str = run_name) -> Any:
        """The weight of each of ``ids``' loss in the newest round selected (``infobatch``, ``--unbiased``;
        1 for selectors without weights), in the order given."""
        weights = await call_store(directory, run, StoreInterface.loss_weights, body.ids)
        return {"weights": np.asarray(weights, dtype=np.float64).tolist()}

    @app.post("/v1/runs/{run}/rewind", response_model=Rewound, responses=ERRORS, dependencies=guard)
    async def rewind(
        run: str = run_name,
        completed_round: int = Query(..., ge=-1, le=MAX_INT, description="-1: before the first round"),
    ) -> Any:
        """Start a training attempt after ``completed_round``: forget what was recorded after it."""
        return {"rewound": bool(await call_store(directory, run, StoreInterface.rewind, completed_round))}

    @app.post(
        "/v1/runs/{run}/rounds/{round_}/metrics",
        response_model=Recorded,
        responses=ERRORS,
        dependencies=guard,
    )
    async def record(
        metrics: dict[str, float], run: str = run_name, round_: int = Path(..., ge=0, le=MAX_INT)
    ) -> Any:
        """Record a finished round's metrics (numbers: test accuracy, train loss, ...)."""
        await call_store(directory, run, StoreInterface.record_round, round_, metrics)
        return {"round": round_, "recorded": True}

"""``GET /v1/runs/{run}/export``: a run's whole score table as Parquet or CSV, streamed shard by shard
(each shard's rows copied from one state of it; a store of one shard: from one state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from scorer_service.core.table import EXPORT_FORMATS, TableEncoder
from scorer_service.core.wire.interface import StoreInterface
from scorer_service.web.auth import Guards
from scorer_service.web.directory import StoreDirectory, call_store
from scorer_service.web.models import READ_STORE_ERRORS

_FILE = {
    "description": "the score table, one row per sample id (``id`` first); X-Row-Count says how many",
    "content": {
        media: {"schema": {"type": "string", "format": "binary"}} for media in EXPORT_FORMATS.values()
    },
    "headers": {"X-Row-Count": {"schema": {"type": "integer"}, "description": "rows in the table"}},
}


def add_export(app: FastAPI, directory: StoreDirectory, guards: Guards) -> None:
    """Add ``GET /v1/runs/{run}/export?format=parquet|csv``: every score column of every sample."""

    @app.get(
        "/v1/runs/{run}/export",
        response_class=StreamingResponse,
        responses={200: _FILE, **READ_STORE_ERRORS},
        **guards.reads(),
    )
    async def export_scores(
        run: str = PathParam(..., min_length=1, max_length=200, description="run name"),
        format: Literal["parquet", "csv"] = Query("parquet", description="file format"),
    ) -> StreamingResponse:
        """The whole score table of a run as Parquet or CSV: each store shard's columns copied from one
        state of it in one call, then encoded and sent a row group at a time, shard after shard."""
        bounds = await call_store(directory, run, StoreInterface.layout)
        # Errors come before the answer starts.
        first = await call_store(directory, run, StoreInterface.part_columns, 0)
        name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in run)
        headers = {
            "Content-Disposition": f'attachment; filename="{name}.{format}"',
            "X-Row-Count": str(bounds[-1]),
        }
        pieces = _pieces(directory, run, bounds, first, format)
        return StreamingResponse(pieces, media_type=EXPORT_FORMATS[format], headers=headers)


async def _pieces(
    directory: StoreDirectory, run: str, bounds: list[int], first: dict[str, Any], fmt: str
) -> AsyncIterator[bytes]:
    encoder = TableEncoder(fmt)
    for shard in range(len(bounds) - 1):
        part = StoreInterface.part_columns
        columns = first if shard == 0 else await call_store(directory, run, part, shard)
        for piece in encoder.part(bounds[shard], columns):
            yield piece
    yield encoder.close()

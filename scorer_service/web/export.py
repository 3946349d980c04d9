"""``GET /v1/runs/{run}/export``: a run's whole score table as Parquet or CSV."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from scorer_service.core.state import COLUMNS
from scorer_service.core.table import EXPORT_FORMATS, serialize
from scorer_service.web.directory import StoreDirectory, call_store

CHUNK = 1 << 20


def _chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(view), CHUNK):
        yield bytes(view[i : i + CHUNK])


def add_export(app: FastAPI, directory: StoreDirectory) -> None:
    """Add ``GET /v1/runs/{run}/export?format=parquet|csv``: every score column of every sample."""

    @app.get("/v1/runs/{run}/export")
    async def export_scores(
        run: str = PathParam(..., min_length=1, max_length=200, description="run name"),
        format: str = Query("parquet", description="parquet or csv"),
    ) -> StreamingResponse:
        """The whole score table of a run (one row per sample id) as Parquet or CSV."""
        if format not in EXPORT_FORMATS:
            raise HTTPException(
                400, f"unknown format {format!r}; expected one of {', '.join(EXPORT_FORMATS)}"
            )
        columns: dict[str, np.ndarray] = {}
        for name in COLUMNS:
            try:
                columns[name] = np.asarray(await call_store(directory, run, "column", name))
            except HTTPException as e:
                # A store started from an older version lacks newer columns: export what it has.
                if e.status_code != 400:
                    raise
        if not columns:
            raise HTTPException(404, f"run {run!r} has no score columns")
        data = await asyncio.to_thread(serialize, columns, format)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in run)
        headers = {
            "Content-Disposition": f'attachment; filename="{name}.{format}"',
            "X-Row-Count": str(len(next(iter(columns.values())))),
            "Content-Length": str(len(data)),
        }
        return StreamingResponse(_chunks(data), media_type=EXPORT_FORMATS[format], headers=headers)

"""``GET /v1/runs/{run}/export``: a run's whole score table as Parquet or CSV."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from scorer_service.api import StoreDirectory, call_store
from scorer_service.state import COLUMNS

EXPORT_FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}
CHUNK = 1 << 20


def _serialize(columns: dict[str, np.ndarray], fmt: str) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    n = len(next(iter(columns.values())))
    table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), **columns})
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink)
    else:
        pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


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
        data = await asyncio.to_thread(_serialize, columns, format)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in run)
        headers = {
            "Content-Disposition": f'attachment; filename="{name}.{format}"',
            "X-Row-Count": str(len(next(iter(columns.values())))),
            "Content-Length": str(len(data)),
        }
        return StreamingResponse(_chunks(data), media_type=EXPORT_FORMATS[format], headers=headers)

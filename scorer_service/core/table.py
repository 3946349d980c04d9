"""A run's score table as a file: the export formats and their encoding."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

EXPORT_FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}


def serialize(columns: dict[str, np.ndarray], fmt: str) -> bytes:
    """The score table (one row per sample id, ``id`` first) as a Parquet or CSV file."""
    n = len(next(iter(columns.values())))
    table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)), **columns})
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        pq.write_table(table, sink)
    else:
        pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()

"""Arrow encodings of the store's state: numpy columns as record batches, round records as a table.

Nothing is pickled: columns are Arrow arrays (2-d arrays as fixed-size lists), round metrics and
histograms JSON strings.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from scorer_service.core.rounds import RoundRecord


def to_record_batch(columns: dict[str, np.ndarray]) -> pa.RecordBatch:
    """Numpy columns (1-d, or 2-d as fixed-size lists) as one Arrow record batch."""
    arrays, names = [], []
    for name, arr in columns.items():
        if arr.ndim == 2:
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1]))
        else:
            arrays.append(pa.array(arr))
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def to_numpy(batch: pa.RecordBatch | pa.Table) -> dict[str, np.ndarray]:
    """Inverse of :func:`to_record_batch`."""
    out = {}
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            width = col.type.list_size
            out[name] = col.values.to_numpy(zero_copy_only=False).reshape(-1, width).copy()
        else:
            out[name] = col.to_numpy(zero_copy_only=False).copy()
    return out


def rounds_table(rounds: dict[int, RoundRecord]) -> pa.Table:
    recs = [rounds[r] for r in sorted(rounds)]
    return pa.table(
        {
            "round": pa.array([r.round for r in recs], pa.int64()),
            "cycle": pa.array([r.cycle for r in recs], pa.int64()),
            "selector": pa.array([r.selector for r in recs], pa.string()),
            "budget": pa.array([r.budget for r in recs], pa.int64()),
            "world_size": pa.array([r.world_size for r in recs], pa.int64()),
            "selection_ms": pa.array([r.selection_ms for r in recs], pa.float64()),
            "ingested": pa.array([r.ingested for r in recs], pa.int64()),
            "metrics": pa.array([json.dumps(r.metrics) for r in recs], pa.string()),
            "dih_histogram": pa.array([json.dumps(r.dih_histogram) for r in recs], pa.string()),
            "selected": pa.array([r.selected for r in recs], pa.list_(pa.int64())),
        }
    )


def rounds_from_table(table: pa.Table) -> dict[int, RoundRecord]:
    out = {}
    for row in table.to_pylist():
        out[row["round"]] = RoundRecord(
            round=row["round"],
            cycle=row["cycle"],
            selector=row["selector"],
            budget=row["budget"],
            selected=np.asarray(row["selected"], dtype=np.int64),
            world_size=row["world_size"],
            selection_ms=row["selection_ms"],
            ingested=row["ingested"],
            metrics=json.loads(row["metrics"]),
            dih_histogram=json.loads(row["dih_histogram"]),
        )
    return out

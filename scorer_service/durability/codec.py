"""Arrow encodings of the store's state: numpy columns as record batches, round records as a table.

Nothing is pickled: columns are Arrow arrays (2-d arrays as fixed-size lists), round metrics and
histograms JSON strings.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from scorer_service.core.rounds import RoundRecord
from scorer_service.core.wire.arrow import to_numpy, to_record_batch

__all__ = ["rounds_from_table", "rounds_table", "to_numpy", "to_record_batch"]


def _list_array(rows: list[np.ndarray], dtype: type[np.generic]) -> pa.LargeListArray:
    """One list per row, from numpy arrays, in one copy."""
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    values = np.concatenate([np.zeros(0, dtype), *rows]).astype(dtype, copy=False)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))


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
            "recorded": pa.array([r.recorded for r in recs], pa.bool_()),
            "dih_histogram": pa.array([json.dumps(r.dih_histogram) for r in recs], pa.string()),
            "details": pa.array([json.dumps(r.details) for r in recs], pa.string()),
            "selected": _list_array([r.selected for r in recs], np.int64),
            "codes": _list_array([r.codes for r in recs], np.uint64),
            "trim_code": pa.array([r.trim[0] for r in recs], pa.uint64()),
            "trim_id": pa.array([r.trim[1] for r in recs], pa.int64()),
            "counts": pa.array([r.counts for r in recs], pa.list_(pa.int64())),
            "shard": pa.array([r.shard for r in recs], pa.int64()),
        }
    )


def _lists(table: pa.Table, name: str, dtype: type) -> list[np.ndarray]:
    """A list column as one numpy array per row, without a Python object per element."""
    col = table.column(name).combine_chunks()
    values = col.flatten().to_numpy(zero_copy_only=False).astype(dtype)
    offsets = col.offsets.to_numpy()
    return [values[a:b].copy() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def rounds_from_table(table: pa.Table) -> dict[int, RoundRecord]:
    out = {}
    arrays = {"selected": _lists(table, "selected", np.int64), "codes": _lists(table, "codes", np.uint64)}
    scalars = table.drop_columns(["selected", "codes"]).to_pylist()
    for i, row in enumerate(scalars):
        out[row["round"]] = RoundRecord(
            round=row["round"],
            cycle=row["cycle"],
            selector=row["selector"],
            budget=row["budget"],
            selected=arrays["selected"][i],
            world_size=row["world_size"],
            selection_ms=row["selection_ms"],
            codes=arrays["codes"][i],
            trim=(row["trim_code"], row["trim_id"]),
            counts=list(row["counts"]),
            shard=row["shard"],
            ingested=row["ingested"],
            metrics=json.loads(row["metrics"]),
            # Snapshots from before the column: a round was recorded when it had metrics.
            recorded=bool(row.get("recorded", row["metrics"] != "{}")),
            dih_histogram=json.loads(row["dih_histogram"]),
            details=json.loads(row["details"]),
        )
    return out

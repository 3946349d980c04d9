"""Arrow encodings of the store's state: numpy columns as record batches, round records as a table.

Nothing is pickled: columns are Arrow arrays (2-d arrays as fixed-size lists), round metrics and
histograms JSON strings.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from scorer_service.core.arrow import to_numpy, to_record_batch
from scorer_service.core.rounds import RoundRecord

__all__ = ["rounds_from_table", "rounds_table", "to_numpy", "to_record_batch"]


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
            "details": pa.array([json.dumps(r.details) for r in recs], pa.string()),
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
            details=json.loads(row.get("details") or "{}"),
        )
    return out

"""Numpy columns as Arrow: record batches for storage, IPC streams for the wire.

2-d arrays travel as fixed-size lists; nothing is pickled.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pyarrow as pa


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


def to_ipc(columns: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """Numpy columns as one Arrow IPC stream (``metadata`` on its schema)."""
    batch = to_record_batch(columns)
    if metadata:
        batch = batch.replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return cast(bytes, sink.getvalue().to_pybytes())


def from_ipc(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`to_ipc` (the columns; ``pyarrow.ArrowInvalid`` when it is not a stream)."""
    return to_numpy(pa.ipc.open_stream(data).read_all())

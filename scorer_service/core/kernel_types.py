"""Numba types of the compiled ingest passes' arguments, declared so each pass compiles once.

Batch columns arrive writable (in process, over HTTP) or read-only (deserialized by Ray), contiguous
or not; typed as read-only, any-layout arrays they all convert to one signature, compiled (or loaded
from numba's cache) when the module is imported rather than on a store's first batch.
"""

from __future__ import annotations

from numba import typeof as _typeof
from numba import types

from scorer_service.core.state import SampleState

# The per-sample records of every store (see state.py).
RECORDS = _typeof(SampleState(1).records)
INT = types.int64
FLOATS = (types.float32, types.float64)  # loss and learning rates are sent as either


def column(dtype: types.Type) -> types.Array:
    """A 1-d batch column of ``dtype``, read-only or not, any layout."""
    return types.Array(dtype, 1, "A", readonly=True)


def out(dtype: types.Type) -> types.Array:
    """A 1-d array a pass writes."""
    return types.Array(dtype, 1, "A")

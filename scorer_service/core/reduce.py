"""Statistics that each shard computes over its samples and that combine into the run's, exactly.

A part is a dict from ``"name:op"`` to a value: ``sum`` (an exact sum from :mod:`.exact_sum`),
``max``, ``min``, ``count`` (an integer) or ``hist`` (integer counts). :func:`combine` merges the
parts of every shard; the result does not depend on how the samples were split (sums are exact until
rounded once, the rest are integers or order-free).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from scorer_service.core.exact_sum import exact_sum, to_float

OPS = ("sum", "max", "min", "count", "hist")


def part_of(values: np.ndarray, name: str, *ops: str) -> dict[str, Any]:
    """The part of ``values`` (float64, finite) for each of ``ops`` (``sum``, ``max``, ``min``, ``count``)."""
    out: dict[str, Any] = {}
    for op in ops:
        if op == "sum":
            out[f"{name}:sum"] = exact_sum(values)
        elif op == "max":
            out[f"{name}:max"] = float(values.max()) if values.size else -math.inf
        elif op == "min":
            out[f"{name}:min"] = float(values.min()) if values.size else math.inf
        elif op == "count":
            out[f"{name}:count"] = int(values.size)
        else:
            raise ValueError(f"unknown statistic {op!r}; expected one of {', '.join(OPS[:-1])}")
    return out


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's statistics from every shard's part (same keys in each)."""
    out: dict[str, Any] = {}
    for key in parts[0] if parts else ():
        op = key.rsplit(":", 1)[1]
        values = [p[key] for p in parts]
        if op == "sum":
            out[key] = to_float(sum(values))
        elif op == "max":
            out[key] = max(values)
        elif op == "min":
            out[key] = min(values)
        elif op == "count":
            out[key] = int(sum(values))
        elif op == "hist":
            out[key] = np.sum(values, axis=0)
        else:
            raise ValueError(f"unknown statistic {key!r}")
    return out


def bin_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins`` equal bins over ``[lo, hi]`` (a point widened by 0.5 each way, as numpy does)."""
    return np.linspace(lo, hi, bins + 1) if hi > lo else np.linspace(lo - 0.5, hi + 0.5, bins + 1)


@nb.njit(cache=True, nogil=True)
def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bins = edges.shape[0] - 1
    lo, hi = edges[0], edges[bins]
    scale = bins / (hi - lo)
    counts = np.zeros(bins, dtype=np.int64)
    for j in range(values.shape[0]):
        v = np.float64(values[j])
        if not (lo <= v <= hi):  # outside, or NaN
            continue
        b = min(np.int64((v - lo) * scale), bins - 1)
        # The division may land one bin off an edge: the edges decide.
        if v < edges[b]:
            b -= 1
        elif b < bins - 1 and v >= edges[b + 1]:
            b += 1
        counts[b] += 1
    return counts


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many of ``values`` fall in each bin of the increasing equal-width ``edges`` (the last bin
    closed, values outside them and NaN not counted), as ``np.histogram`` counts, in one pass."""
    return _bin_counts(values, np.ascontiguousarray(edges, dtype=np.float64))

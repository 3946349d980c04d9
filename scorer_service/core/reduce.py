"""Statistics that each shard computes over its samples and that combine into the run's, exactly.

A part is a dict from ``"name:op"`` to a value: ``sum`` (an exact sum from :mod:`.exact_sum`),
``max``, ``min``, ``count`` (an integer) or ``hist`` (integer counts). :func:`combine` merges the
parts of every shard; the result does not depend on how the samples were split (sums are exact until
rounded once, the rest are integers or order-free).
"""

from __future__ import annotations

import math
from typing import Any

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

"""Statistics that each shard computes over its samples and that combine into the run's, exactly.

A statistic is an aggregate in three stages, as Ray Data's ``AggregateFnV2`` has them: every shard
computes its *partial* over its own samples (:meth:`Sum.of`, ...), the coordinator *merges* the
shards' partials of each statistic, and :meth:`Aggregate.finalize` turns the merged partial into the
run's value. A shard answers a dict from statistic names to partials; the partial's type, not the
name, says how it combines. The result does not depend on how the samples were split: sums are exact
(:mod:`.exact_sum`) until rounded once in :meth:`Sum.finalize`, the rest are integers or order-free.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import reduce
from typing import Any, Generic, Self, TypeVar

import numba as nb
import numpy as np

from scorer_service.core.exact_sum import exact_sum, to_float

V = TypeVar("V")


class Aggregate(ABC, Generic[V]):
    """One shard's partial of a statistic whose run-wide value is a ``V``."""

    @abstractmethod
    def merge(self, other: Self) -> Self:
        """The partial of both parts' samples together."""

    @abstractmethod
    def finalize(self) -> V:
        """The statistic's value from the partial of every sample."""


@dataclass(frozen=True)
class Sum(Aggregate[float]):
    """An exact sum (times 2^1075, :func:`.exact_sum.exact_sum`), rounded once when finalized."""

    exact: int

    @classmethod
    def of(cls, values: np.ndarray) -> Sum:
        return cls(exact_sum(values))

    def merge(self, other: Sum) -> Sum:
        return Sum(self.exact + other.exact)

    def finalize(self) -> float:
        return to_float(self.exact)


@dataclass(frozen=True)
class Max(Aggregate[float]):
    """The largest value (-inf over no values)."""

    value: float

    @classmethod
    def of(cls, values: np.ndarray) -> Max:
        return cls(float(values.max()) if values.size else -math.inf)

    def merge(self, other: Max) -> Max:
        return Max(max(self.value, other.value))

    def finalize(self) -> float:
        return self.value


@dataclass(frozen=True)
class Min(Aggregate[float]):
    """The smallest value (inf over no values)."""

    value: float

    @classmethod
    def of(cls, values: np.ndarray) -> Min:
        return cls(float(values.min()) if values.size else math.inf)

    def merge(self, other: Min) -> Min:
        return Min(min(self.value, other.value))

    def finalize(self) -> float:
        return self.value


@dataclass(frozen=True)
class Count(Aggregate[int]):
    """How many samples."""

    value: int

    def merge(self, other: Count) -> Count:
        return Count(self.value + other.value)

    def finalize(self) -> int:
        return self.value


@dataclass(frozen=True, eq=False)
class Hist(Aggregate[np.ndarray]):
    """Counts per bin, the bins the same in every part."""

    counts: np.ndarray

    def merge(self, other: Hist) -> Hist:
        return Hist(self.counts + other.counts)

    def finalize(self) -> np.ndarray:
        return self.counts


def combine(parts: list[dict[str, Aggregate[Any]]]) -> dict[str, Any]:
    """The run's statistics from every shard's partials (the same names in each)."""
    return {
        k: reduce(lambda a, b: a.merge(b), [p[k] for p in parts]).finalize()
        for k in (parts[0] if parts else ())
    }


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

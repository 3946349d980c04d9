"""Read-only questions about a run's scores and rounds (REST, dashboard, export, CLI).

A store shard calls the functions that take its live state under its read lock (they return copies)
and answers for its own ids (``*_part``); the coordinator merges the shards' answers (``merge_*``)
into what one store holding every sample answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from scorer_service.core import label_noise
from scorer_service.core.errors import InvalidQuery, NotFound
from scorer_service.core.ranking import top_k
from scorer_service.core.reduce import Count, Hist, Max, Min, combine
from scorer_service.core.state import METRICS, Sample, SampleState
from scorer_service.core.wire.answers import (
    Histogram,
    LabelIssue,
    RoundSummary,
    RunInfo,
    ShardLoad,
    Subset,
    TopEntry,
    run_state,
)


def check_ids(ids: npt.ArrayLike, n: int) -> np.ndarray:
    """``ids`` as int64, each in ``[0, n)``; :class:`NotFound` naming the first that is not."""
    try:
        ids = np.asarray(ids, dtype=np.int64)
    except (OverflowError, ValueError):
        raise NotFound(f"sample ids must be integers in [0, {n})") from None
    bad = (ids < 0) | (ids >= n)
    if np.any(bad):
        raise NotFound(f"sample {int(ids[np.argmax(bad)])} does not exist (n = {n})")
    return ids


def samples(ids: np.ndarray, rows: dict[str, np.ndarray]) -> list[Any]:
    """Every score column of each sample in ``ids`` (:class:`.Sample`), from its ``rows``
    (:meth:`.SampleState.rows`)."""
    return [Sample(id=int(i), **{k: _py(v[j]) for k, v in rows.items()}) for j, i in enumerate(ids.tolist())]


def metric_values(state: SampleState, metric: str) -> np.ndarray:
    """A copy of a rankable column as float64."""
    if metric not in METRICS:
        raise InvalidQuery(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return state.metric(metric)


def columns(state: SampleState, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Copies of whole state columns (default: every column), for export and tests."""
    names = list(state.columns) if names is None else names
    unknown = [name for name in names if name not in state.columns]
    if unknown:
        raise InvalidQuery(f"unknown column {unknown[0]!r}; expected one of {', '.join(state.columns)}")
    return {name: state.columns[name].copy() for name in names}


LABEL_ISSUE_COLUMNS = ("noise", "last_correct", "label", "predicted", "loss_mean", "seen")


def label_issues(cols: dict[str, np.ndarray], threshold: float = 0.5, limit: int = 100) -> list[LabelIssue]:
    """The likely mislabeled samples (:func:`.label_noise.suspects`) among ``cols`` (copies of
    :data:`LABEL_ISSUE_COLUMNS`), most likely first, with their noise probability, the label trained on
    and the model's latest prediction (-1: not sent)."""
    if not 0.0 < threshold < 1.0:
        raise InvalidQuery(f"threshold must be in (0, 1), got {threshold}")
    if limit < 1:
        raise InvalidQuery(f"limit must be >= 1, got {limit}")
    ids = np.flatnonzero(label_noise.suspects(cols["noise"], cols["last_correct"], threshold))
    pick = ids[top_k(cols["noise"][ids].astype(np.float64), min(limit, ids.size))]
    shown = ("noise", "label", "predicted", "loss_mean", "seen")
    return [LabelIssue(id=int(i), **{c: _py(cols[c][i]) for c in shown}) for i in pick]


def _py(v: Any) -> Any:
    """numpy scalar -> JSON-friendly Python value (NaN -> None)."""
    v = v.item()
    return None if isinstance(v, float) and v != v else v


# ---- a store of several shards: each answers for its ids, the coordinator merges ------------


def metric_part(values: np.ndarray, first: int, op: str, *args: Any) -> Any:
    """One shard's part of a query over a rankable column whose position 0 is sample ``first``:
    ``top`` (k, order): its k best as (ids, values); ``range``: finite min and max, and counts;
    ``hist`` (bins, lo, hi): counts of the finite values in ``bins`` bins over [lo, hi] (values outside
    it, which changed since the ``range`` part, in the end bins) and the missing count, of one read."""
    finite = np.isfinite(values)
    if op == "top":
        k, order = args
        if order not in ("asc", "desc"):
            raise InvalidQuery(f"order must be 'asc' or 'desc', got {order!r}")
        valid = np.flatnonzero(finite)
        pick = valid[top_k(values[valid], min(k, valid.size), largest=order == "desc")]
        return pick + first, values[pick]
    x = values[finite]
    missing = Count(int(values.size - x.size))
    if op == "range":
        return {"min": Min.of(x), "max": Max.of(x), "finite": Count(int(x.size)), "missing": missing}
    bins, lo, hi = args
    counts = np.histogram(np.clip(x, lo, hi), bins=bins, range=(lo, hi))[0]
    return {"hist": Hist(counts), "missing": missing}


def merge_top(parts: list[tuple[np.ndarray, np.ndarray]], metric: str, k: int, order: str) -> list[TopEntry]:
    """The k best of every shard's k best: best first, ties by lowest id (as one store ranks)."""
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
    values = np.concatenate([p[1] for p in parts]).astype(np.float64)
    pick = np.lexsort((ids, -values if order == "desc" else values))[:k]
    return [TopEntry(id=int(ids[i]), metric=metric, value=float(values[i])) for i in pick]


def histogram_edges(stats: dict[str, Any], bins: int) -> np.ndarray | None:
    """The bin edges one store would use for the combined ``range`` parts (None: no finite value)."""
    if not stats["finite"]:
        return None
    return np.histogram_bin_edges(np.array([stats["min"], stats["max"]]), bins=bins)


def merge_label_issues(parts: list[list[LabelIssue]], limit: int) -> list[LabelIssue]:
    """The ``limit`` most likely mislabeled of every shard's: most likely first, ties by lowest id."""
    rows = [row for part in parts for row in part]
    rows.sort(key=lambda r: (-(r.noise if r.noise is not None else -np.inf), r.id))
    return rows[:limit]


def merge_rounds(parts: list[list[RoundSummary]]) -> list[RoundSummary]:
    """Round summaries from every shard: the run's fields from the first, ingested counts summed."""
    return [replace(same[0], ingested=sum(s.ingested for s in same)) for same in zip(*parts, strict=True)]


def merge_info(config: dict[str, Any], parts: list[dict[str, Any]], rounds: list[RoundSummary]) -> RunInfo:
    """A run's settings and counters over its shards. Every batch reaches every shard (with at least
    its learning rates), so batches, rejections and duplicates are the largest of the shards' counts;
    samples add up, and so do the shards' ingest rates (they ingest side by side)."""
    rate = sum(p["ingested"] / p["ingest_seconds"] for p in parts if p["ingest_seconds"])
    completed = sum(1 for r in rounds if r.recorded)
    load = [f.name for f in fields(ShardLoad)]
    return RunInfo(
        run=config["run"],
        state=run_state(completed, config["epochs"]),
        n=config["n"],
        method=config["method"],
        metric=config["metric"],
        epochs=config["epochs"],
        rounds=len(rounds),
        rounds_completed=completed,
        steps=max(p["steps"] for p in parts),
        ingested=sum(p["ingested"] for p in parts),
        superseded=sum(p.get("superseded", 0) for p in parts),
        **{k: max(p[k] for p in parts) for k in ("batches", "rejected", "duplicates")},
        ingest_samples_per_s=rate,
        fsyncs=sum(p.get("fsyncs", 0) for p in parts),
        shards=[ShardLoad(**{k: p[k] for k in load}) for p in parts],
        config=config,
    )


def route(
    call: Callable[[list[tuple[Any, ...] | None]], list[Any]], bounds: np.ndarray, ids: np.ndarray
) -> list[tuple[np.ndarray, Any]]:
    """The answer for the ids it holds of each shard holding some of ``ids`` (``bounds``: the shards' id
    ranges; ``call(args per shard or None)``): (positions among ``ids``, answer) pairs."""
    owner = np.searchsorted(bounds, ids, side="right") - 1
    held = [np.flatnonzero(owner == s) for s in range(len(bounds) - 1)]
    asks: list[tuple[Any, ...] | None] = [(ids[p],) if p.size else None for p in held]
    if not len(ids):  # still one answer, with every column (empty)
        asks[0] = (ids,)
    return [(p, a) for p, a in zip(held, call(asks), strict=True) if a is not None]


def assemble(n: int, routed: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """Per-sample columns of ``n`` asked ids from the shards' answers: (positions among the ids, columns)."""
    out: dict[str, np.ndarray] = {}
    for positions, cols in routed:
        for name, values in cols.items():
            if name not in out:
                out[name] = np.empty((n, *values.shape[1:]), dtype=values.dtype)
            out[name][positions] = values
    return out


def page(counts: list[int], offset: int, limit: int) -> list[tuple[int, int]]:
    """Which positions ``[a, b)`` of each shard's part make up ``[offset, offset + limit)`` of the whole,
    the parts following each other in shard order."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    lo = np.clip(offset - starts[:-1], 0, counts)
    hi = np.clip(offset + limit - starts[:-1], 0, counts)
    return [(int(a), int(max(a, b))) for a, b in zip(lo, hi, strict=True)]


def sharded_histogram(parts: Callable[..., list[Any]], metric: str, bins: int) -> Histogram:
    """The histogram of ``metric`` over every shard (``parts(op, *args)``: every shard's
    :func:`metric_part`), with the edges one store would use: the finite range first, then each
    shard's counts over it. Counts and missing come from one read of each shard, so they add up to n
    while the store changes."""
    stats = combine(parts("range"))
    edges = histogram_edges(stats, bins)
    if edges is None:
        return Histogram(metric=metric, counts=[], edges=[], missing=stats["missing"])
    hist = combine(parts("hist", bins, edges[0], edges[-1]))
    return Histogram(
        metric=metric, counts=hist["hist"].tolist(), edges=edges.tolist(), missing=hist["missing"]
    )


def sharded_subset(
    state: dict[str, Any] | None,
    ids_of: Callable[[list[tuple[Any, ...] | None]], list[Any]],
    round_: int,
    offset: int,
    limit: int,
) -> Subset:
    """Page ``[offset, offset + limit)`` of the ids trained on in ``round_`` (``state``: the round's
    state on the first shard, None: never selected), from the shards that hold them
    (``ids_of(args per shard or None)``: their ``round_ids``)."""
    if state is None:
        raise NotFound(f"round {round_} was never selected")
    if offset < 0 or limit < 0:
        raise InvalidQuery("offset and limit must be >= 0")
    spans = page(state["counts"], offset, limit)
    parts = ids_of([None if a == b else (round_, a, b) for a, b in spans])
    ids = np.concatenate([np.zeros(0, np.int64), *[p for p in parts if p is not None]])
    return Subset(round=round_, total=sum(state["counts"]), offset=offset, ids=ids.tolist())

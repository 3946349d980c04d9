"""Read-only questions about a run's scores and rounds (REST, dashboard, export, CLI).

The store calls the functions that take the live state or rounds under its read lock (they return
copies); the others compute an answer from such copies, after the lock is released.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scorer_service.core import label_noise
from scorer_service.core.errors import InvalidQuery, NotFound
from scorer_service.core.ranking import top_k
from scorer_service.core.rounds import RoundRecord
from scorer_service.core.state import METRICS, SampleState


def info(config: dict[str, Any], ingestor: Any, rounds: Mapping[int, RoundRecord]) -> dict[str, Any]:
    """A run's settings and counters; ``ingestor`` is the run's :class:`~.ingest.Ingestor`."""
    done = [r for r, rec in rounds.items() if rec.metrics]
    seconds = ingestor.ingest_seconds
    return {
        "run": config["run"],
        "n": config["n"],
        "method": config["method"],
        "metric": config["metric"],
        "epochs": config["epochs"],
        "rounds": len(rounds),
        "rounds_completed": len(done),
        "steps": ingestor.lr_log.num_steps,
        **ingestor.counters,
        "ingest_samples_per_s": ingestor.counters["ingested"] / seconds if seconds else 0.0,
        "config": config,
    }


def check_ids(ids: Any, n: int) -> np.ndarray:
    """``ids`` as int64, each in ``[0, n)``; :class:`NotFound` naming the first that is not."""
    try:
        ids = np.asarray(ids, dtype=np.int64)
    except (OverflowError, ValueError):
        raise NotFound(f"sample ids must be integers in [0, {n})") from None
    bad = (ids < 0) | (ids >= n)
    if np.any(bad):
        raise NotFound(f"sample {int(ids[np.argmax(bad)])} does not exist (n = {n})")
    return ids


def parameters(state: SampleState, ids: Any) -> dict[str, np.ndarray]:
    """Instance data parameters (log sigma and its momentum) of ``ids``, for a rank's shard."""
    ids = check_ids(ids, state.n)
    return {"log_sigma": state.log_sigma[ids], "log_sigma_momentum": state.log_sigma_momentum[ids]}


def samples(ids: np.ndarray, rows: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Every score column of each sample in ``ids``, from its ``rows`` (:meth:`.SampleState.rows`)."""
    return [{"id": int(i), **{k: _py(v[j]) for k, v in rows.items()}} for j, i in enumerate(ids.tolist())]


def metric_values(state: SampleState, metric: str) -> np.ndarray:
    """A copy of a rankable column as float64."""
    if metric not in METRICS:
        raise InvalidQuery(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return state.metric(metric)


def top(values: np.ndarray, metric: str = "dih", k: int = 50, order: str = "desc") -> list[dict[str, Any]]:
    """The ``k`` samples with the largest (``desc``) or smallest (``asc``) ``values`` of ``metric``;
    unseen excluded for metrics that are undefined before a first observation."""
    if order not in ("asc", "desc"):
        raise InvalidQuery(f"order must be 'asc' or 'desc', got {order!r}")
    valid = np.flatnonzero(np.isfinite(values))
    pick = valid[top_k(values[valid], min(k, valid.size), largest=order == "desc")]
    return [{"id": int(i), metric: float(values[i])} for i in pick]


def histogram(values: np.ndarray, metric: str = "dih", bins: int = 20) -> dict[str, Any]:
    """Counts of ``values`` of ``metric`` in ``bins`` equal-width bins over their finite range."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"metric": metric, "counts": [], "edges": [], "missing": int(values.size)}
    counts, edges = np.histogram(finite, bins=bins)
    return {
        "metric": metric,
        "counts": counts.tolist(),
        "edges": edges.tolist(),
        "missing": int(values.size - finite.size),
    }


def round_summaries(rounds: Mapping[int, RoundRecord]) -> list[dict[str, Any]]:
    return [rounds[r].summary() for r in sorted(rounds)]


def round_subset(rounds: Mapping[int, RoundRecord], round_: int, offset: int = 0, limit: int = 1000) -> dict:
    """The ids trained on in ``round_``, paged."""
    rec = rounds.get(round_)
    if rec is None:
        raise NotFound(f"round {round_} was never selected")
    if offset < 0 or limit < 0:
        raise InvalidQuery("offset and limit must be >= 0")
    ids = rec.ids
    return {
        "round": round_,
        "total": int(len(ids)),
        "offset": offset,
        "ids": ids[offset : offset + limit].tolist(),
    }


def columns(state: SampleState, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Copies of whole state columns (default: every column), for export and tests."""
    names = list(state.columns) if names is None else names
    unknown = [name for name in names if name not in state.columns]
    if unknown:
        raise InvalidQuery(f"unknown column {unknown[0]!r}; expected one of {', '.join(state.columns)}")
    return {name: state.columns[name].copy() for name in names}


LABEL_ISSUE_COLUMNS = ("noise", "last_correct", "label", "predicted", "loss_mean", "seen")


def label_issues(
    cols: dict[str, np.ndarray], threshold: float = 0.5, limit: int = 100
) -> list[dict[str, Any]]:
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
    return [{"id": int(i), **{c: _py(cols[c][i]) for c in shown}} for i in pick]


def _py(v: Any) -> Any:
    """numpy scalar -> JSON-friendly Python value (NaN -> None)."""
    v = v.item()
    return None if isinstance(v, float) and v != v else v

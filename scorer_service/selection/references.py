"""The two references every curriculum is measured against, as selectors of the same store.

``full`` trains on every sample every round, through the same store, sampler and schedule, so
its cost beside a loop with no store is the store's own cost. ``infobatch`` is InfoBatch (Qin et al.,
ICLR 2024, "Lossless training speed up by unbiased dynamic data pruning"), made one central decision
instead of an all-gather of every rank's scores: each round, a sample whose last loss lies below the
mean of the last losses is pruned with probability ``prune_ratio`` (default 0.5); the kept ones below
the mean get loss weight ``1 / (1 - prune_ratio)``, so the expected gradient is full data's; samples
never seen are kept; the last ``anneal`` share of the rounds (default 0.125: the paper's delta 0.875)
trains on all data. It selects from the first round on (its rule keeps every unseen sample), so the
warm start only shapes the learning rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer_service.core import counter_rng
from scorer_service.core.reduce import Aggregate, Count, Sum
from scorer_service.selection.registry import KeyContext, register
from scorer_service.selection.schedule import Budget

PRUNE_RATIO = 0.5
ANNEAL = 0.125


@register("full", budget=Budget(start=1.0, factor=1.0, floor=1.0, cap=1.0))
def full_keys(ctx: KeyContext) -> np.ndarray:
    """Every sample (a uniform key only orders the trim to a multiple of the world size)."""
    return ctx.uniform()


def prune_ratio(params: dict[str, Any]) -> float:
    """InfoBatch's pruning probability of a below-mean sample, checked."""
    r = float(params.get("prune_ratio", PRUNE_RATIO))
    if not 0.0 <= r < 1.0:
        raise ValueError(f"prune_ratio must be in [0, 1), got {r}")
    return r


def _below_mean(ctx: KeyContext) -> np.ndarray:
    """Samples seen before whose last loss lies below the run's mean of the last losses."""
    loss = ctx.state.last_loss
    count = ctx.stats["infobatch_loss_count"]
    mean = ctx.stats["infobatch_loss_sum"] / count if count else np.inf
    return loss < mean  # NaN (never seen) compares False: kept


def _kept(ctx: KeyContext) -> np.ndarray:
    """InfoBatch's decision for every sample of the pool: kept unless below the mean and drawn."""
    if "kept" not in ctx.memo:
        drawn = counter_rng.uniforms(ctx.seed, ctx.round, counter_rng.PRUNE, ctx.first, ctx.state.n)
        kept = ~(_below_mean(ctx) & (drawn < prune_ratio(ctx.params)))
        if ctx.eligible is not None:
            kept &= ctx.eligible
        ctx.memo["kept"] = kept
    return ctx.memo["kept"]


def _loss_moments(ctx: KeyContext) -> dict[str, Aggregate]:
    loss = ctx.pool(ctx.state.last_loss).astype(np.float64)
    finite = loss[np.isfinite(loss)]
    return {"infobatch_loss_sum": Sum.of(finite), "infobatch_loss_count": Count(int(finite.size))}


def _kept_count(ctx: KeyContext) -> dict[str, Aggregate]:
    return {"infobatch_kept_count": Count(int(np.count_nonzero(_kept(ctx))))}


def _rescaled(ctx: KeyContext, positions: np.ndarray) -> np.ndarray:
    below = _below_mean(ctx)[positions]
    return np.where(below, 1.0 / (1.0 - prune_ratio(ctx.params)), 1.0).astype(np.float32)


@register(
    "infobatch",
    score="last_loss",
    stages=(_loss_moments, _kept_count),
    loss_weights=_rescaled,
    size=lambda stats: stats["infobatch_kept_count"],
    warm_start=False,
    anneal=ANNEAL,
)
def infobatch_keys(ctx: KeyContext) -> np.ndarray:
    """Kept samples above every pruned one: the selection of the size the kept count sets is the kept."""
    return ctx.uniform() + _kept(ctx)

"""Selectors: a key per sample from its state, its id and a few statistics of the run.

Each is a small function registered by name with what the store needs to know about it
(:mod:`.registry`), and each is tested on known inputs. The round's selection is the budget's
largest keys (ties: lowest id), so a selector is top-k (DIHCL-Greedy, SPL), weighted sampling
without replacement as top-k of Gumbel-perturbed log-weights (DIHCL-Rand, -Exp, DoCL), a uniform
draw (random) or Thompson sampling (DIHCL-Beta); its random draws are keyed by (seed, round, sample
id), so the selection does not depend on how the store is sharded. Budget schedules: DIHCL shrinks
(paper: 0.85 per cycle to 0.2); the official DoCL and MCL code grow (x1.1 / x1.2 per cycle up to
0.9); SPL grows to all data (its threshold anneals until every sample is included).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scorer_service.core import counter_rng, libm
from scorer_service.core.reduce import part_of
from scorer_service.core.state import SampleState
from scorer_service.selection.registry import KeyContext, register, selector_spec
from scorer_service.selection.schedule import Budget


@register("random", score="seen")
def random_keys(ctx: KeyContext) -> np.ndarray:
    """Uniform without replacement: the honest control (same loop, same budget)."""
    return ctx.uniform()


@register("dihcl-greedy")
def greedy_keys(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Greedy (Alg. 1 line 7): the k samples of largest DIH."""
    return ctx.state.dih.astype(np.float64)


@register("dihcl-rand")
def rand_keys(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Rand (Sec. 3.3): k draws without replacement with ``p ~ r`` (zero hardness drawn last)."""
    return ctx.gumbel(libm.log(np.maximum(ctx.state.dih, 0.0)))


def exp_temperature(params: dict, cycle: int, n: int) -> float:
    """Inverse temperature of DIHCL-Exp's softmax.

    Default (official code): ``tau * decay**(cycle-1)``, floored at ``tau_min``, applied to
    ``r / mean(r)``; 20 x 0.8 per cycle down to 1. ``paper_temperature=True`` uses the paper's
    EXP3 rate ``sqrt(2 ln n / n)`` on raw ``r`` instead.
    """
    if params.get("paper_temperature", False):
        return math.sqrt(2.0 * math.log(n) / n)
    tau = params.get("temperature", 20.0) * params.get("temperature_decay", 0.8) ** max(cycle - 1, 0)
    return max(params.get("temperature_min", 1.0), tau)


def _exp_scaled(ctx: KeyContext) -> np.ndarray:
    """``beta * u`` with ``u = r / mean(r)`` (official code) unless the paper's temperature is chosen."""
    beta = exp_temperature(ctx.params, ctx.cycle, ctx.n)
    mean = ctx.stats["dih:sum"] / ctx.n
    divide = not ctx.params.get("paper_temperature", False) and mean > 0
    return beta * (ctx.state.dih / mean if divide else ctx.state.dih)


def _exp_top(ctx: KeyContext) -> float:
    """The largest ``beta * u`` over the pool, the softmax's shift."""
    beta = exp_temperature(ctx.params, ctx.cycle, ctx.n)
    mean = ctx.stats["dih:sum"] / ctx.n
    top = ctx.stats["dih:max"]
    return beta * (top / mean if not ctx.params.get("paper_temperature", False) and mean > 0 else top)


def _exp_moments(ctx: KeyContext) -> dict[str, Any]:
    return part_of(ctx.pool(ctx.state.dih.astype(np.float64)), "dih", "sum", "max")


def _exp_normalizer(ctx: KeyContext) -> dict[str, Any]:
    return part_of(ctx.pool(libm.exp(_exp_scaled(ctx) - _exp_top(ctx))), "softmax", "sum")


def exp_probability(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Exp's sampling probability of each sample, ``(1 - mix) softmax(beta u) + mix / n``
    (needs the statistics of both stages). The uniform share ``mix`` (EXP3's exploration, default
    0.1) bounds the importance weights below."""
    mix = ctx.params.get("exploration", 0.1)
    share = libm.exp(_exp_scaled(ctx) - _exp_top(ctx)) / ctx.stats["softmax:sum"]
    return (1.0 - mix) * share + mix / ctx.n


def _exp_weights(ctx: KeyContext, positions: np.ndarray) -> np.ndarray:
    # 1 / (n p): uniform sampling has weight 1, so DIH keeps its scale; the exploration share caps it.
    return (1.0 / (ctx.n * exp_probability(ctx)[positions])).astype(np.float32)


@register("dihcl-exp", stages=(_exp_moments, _exp_normalizer), weights=_exp_weights)
def exp_keys(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Exp (EXP3-like, Sec. 3.3): sample by :func:`exp_probability`, importance weight ``1 / (n p)``."""
    return ctx.gumbel(libm.log(exp_probability(ctx)))


def exp_probabilities(r: np.ndarray, params: dict, cycle: int) -> np.ndarray:
    """:func:`exp_probability` of DIH values ``r`` held in one place."""
    state = SampleState(len(r))
    state.dih[:] = r
    ctx = KeyContext(state, 0, len(r), 0, 0, cycle, params)
    return exp_probability(selector_spec("dihcl-exp").statistics(ctx))


@register("dihcl-beta", byproducts=frozenset({"correct"}))
def beta_keys(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Beta (Thompson sampling on prediction flips): ``theta_i ~ Beta(alpha_i, beta_i)``, top-k.

    ``alpha``/``beta`` count flips/non-flips on top of the official code's Beta(2, 2) prior.
    """
    s = ctx.state
    return counter_rng.betas(s.beta_alpha, s.beta_beta, ctx.seed, ctx.round, counter_rng.BETA, ctx.first)


def _docl_floor(ctx: KeyContext) -> dict[str, Any]:
    return part_of(ctx.pool(ctx.state.docl.astype(np.float64)), "docl", "min")


@register(
    "docl",
    score="docl",
    stages=(_docl_floor,),
    budget=Budget(start=0.2, factor=1.1, floor=0.2, cap=0.9),
    byproducts=frozenset({"outputs"}),
)
def docl_keys(ctx: KeyContext) -> np.ndarray:
    """DoCL: k draws without replacement with ``p = softmax(tau * (score - min score))``.

    Official code (ALGORITHMS.md §2.2): tau = 0.1 fixed; the score is the running average of
    <onehot(y) - softmax(z), z_now - z_prev> (large residual and fast-moving output).
    """
    tau = ctx.params.get("docl_temperature", 0.1)
    return ctx.gumbel(tau * (ctx.state.docl - ctx.stats["docl:min"]))


@register(
    "spl", score="last_loss", prefers_low=True, budget=Budget(start=0.3, factor=1.2, floor=0.3, cap=1.0)
)
def spl_keys(ctx: KeyContext) -> np.ndarray:
    """Self-paced learning (Kumar et al. 2010), as compared in DIHCL: the k samples of smallest current
    loss (the loss at each sample's last observation; unseen samples last)."""
    loss = ctx.state.last_loss.astype(np.float64)
    return np.where(np.isnan(loss), -np.inf, -loss)


@register(
    "mcl",
    score="last_loss",
    budget=Budget(start=0.1, factor=1.2, floor=0.1, cap=0.9),
    byproducts=frozenset({"embedding"}),
    candidates=2.0,
    diversifies=True,
)
def mcl_keys(ctx: KeyContext) -> np.ndarray:
    """Minimax curriculum (Zhou & Bilmes, ICLR 2018): hard *and* diverse, diversity weight shrinking.

    Candidates are the ``min(n, 2k)`` samples of largest last loss (official code; unseen count as
    0). When the store keeps embeddings, k of them maximize ``sum(loss) + lambda_c * G(S)`` with G
    facility location (paper), ``lambda_c = lambda * decay**(cycle-1)``; otherwise the official
    code's fallback keeps a uniform random k of the candidates (its modular "centrality" needs the
    same features).
    """
    loss = ctx.state.last_loss.astype(np.float64)
    return np.where(np.isnan(loss), 0.0, loss)

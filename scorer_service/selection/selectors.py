"""Selectors: given the per-sample state, pick the next round's subset of size k.

Each is a small function registered by name with what the store needs to know about it
(:mod:`.registry`), and each is tested on known inputs. A selector returns the chosen ids and, for
the importance-weighted ones, the weight that the next observation of each chosen sample is
multiplied by. Budget schedules: DIHCL shrinks (paper: 0.85 per cycle to 0.2); the official DoCL
and MCL code grow (x1.1 / x1.2 per cycle up to 0.9); SPL grows to all data (its threshold anneals
until every sample is included).
"""

from __future__ import annotations

import math

import numpy as np

from scorer_service.core.ranking import top_k
from scorer_service.core.state import SampleState
from scorer_service.selection.registry import Selection, SelectionContext, register
from scorer_service.selection.sampling import log_weights, softmax, weighted_sample
from scorer_service.selection.schedule import Budget


@register("random", score="seen")
def select_random(ctx: SelectionContext, k: int) -> Selection:
    """Uniform without replacement: the honest control (same loop, same budget)."""
    return Selection(ctx.rng.choice(ctx.state.n, size=k, replace=False).astype(np.int64))


@register("dihcl-greedy")
def select_greedy(ctx: SelectionContext, k: int) -> Selection:
    """DIHCL-Greedy (Alg. 1 line 7): the k samples of largest DIH."""
    return Selection(top_k(ctx.state.dih, k))


@register("dihcl-rand")
def select_rand(ctx: SelectionContext, k: int) -> Selection:
    """DIHCL-Rand (Sec. 3.3): k draws without replacement with ``p ~ r``."""
    return Selection(weighted_sample(log_weights(np.maximum(ctx.state.dih, 0.0)), k, ctx.rng))


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


def exp_probabilities(r: np.ndarray, params: dict, cycle: int) -> np.ndarray:
    """DIHCL-Exp's sampling distribution ``(1 - mix) softmax(beta u) + mix / n``.

    ``u = r / mean(r)`` (official code) unless the paper's temperature is chosen. The uniform
    share ``mix`` (EXP3's exploration, default 0.1) bounds the importance weights below.
    """
    n = r.shape[0]
    beta = exp_temperature(params, cycle, n)
    mean = float(np.mean(r))
    u = r if params.get("paper_temperature", False) or mean <= 0 else r / mean
    mix = params.get("exploration", 0.1)
    return (1.0 - mix) * softmax(beta * u) + mix / n


@register("dihcl-exp")
def select_exp(ctx: SelectionContext, k: int) -> Selection:
    """DIHCL-Exp (EXP3-like, Sec. 3.3): sample by :func:`exp_probabilities`, importance weight ``1 / p``.

    The weight is normalized as ``1 / (n p)``: uniform sampling has weight 1, so DIH keeps its
    scale, and the exploration share caps it at ``1 / mix``.
    """
    n = ctx.state.n
    p = exp_probabilities(ctx.state.dih, ctx.params, ctx.cycle)
    ids = weighted_sample(np.log(p), k, ctx.rng)
    return Selection(ids, importance=(1.0 / (n * p[ids])).astype(np.float32))


@register("dihcl-beta", byproducts=frozenset({"correct"}))
def select_beta(ctx: SelectionContext, k: int) -> Selection:
    """DIHCL-Beta (Thompson sampling on prediction flips): draw ``theta_i ~ Beta(alpha_i, beta_i)``, top-k.

    ``alpha``/``beta`` count flips/non-flips on top of the official code's Beta(2, 2) prior.
    """
    s = ctx.state
    theta = ctx.rng.beta(s.beta_alpha.astype(np.float64), s.beta_beta.astype(np.float64))
    return Selection(top_k(theta, k))


@register(
    "docl",
    score="docl",
    budget=Budget(start=0.2, factor=1.1, floor=0.2, cap=0.9),
    byproducts=frozenset({"outputs"}),
)
def select_docl(ctx: SelectionContext, k: int) -> Selection:
    """DoCL: k draws without replacement with ``p = softmax(tau * (score - min score))``.

    Official code (ALGORITHMS.md §2.2): tau = 0.1 fixed; the score is the running average of
    <onehot(y) - softmax(z), z_now - z_prev> (large residual and fast-moving output).
    """
    score = ctx.state.docl
    tau = ctx.params.get("docl_temperature", 0.1)
    return Selection(weighted_sample(tau * (score - score.min()), k, ctx.rng))


def _last_loss(state: SampleState, unseen: float) -> np.ndarray:
    loss = state.last_loss.astype(np.float64)
    return np.where(np.isnan(loss), unseen, loss)


@register(
    "spl", score="last_loss", prefers_low=True, budget=Budget(start=0.3, factor=1.2, floor=0.3, cap=1.0)
)
def select_spl(ctx: SelectionContext, k: int) -> Selection:
    """Self-paced learning (Kumar et al. 2010), as compared in DIHCL: the k samples of smallest current
    loss (the loss at each sample's last observation; unseen samples last)."""
    return Selection(top_k(_last_loss(ctx.state, np.inf), k, largest=False))


@register(
    "mcl",
    score="last_loss",
    budget=Budget(start=0.1, factor=1.2, floor=0.1, cap=0.9),
    byproducts=frozenset({"embedding"}),
    diversifies=True,
)
def select_mcl(ctx: SelectionContext, k: int) -> Selection:
    """Minimax curriculum (Zhou & Bilmes, ICLR 2018): hard *and* diverse, diversity weight shrinking.

    Candidates are the ``min(n, 2k)`` samples of largest last loss (official code). When the store
    keeps embeddings, k of them maximize ``sum(loss) + lambda_c * G(S)`` with G facility location
    (paper), ``lambda_c = lambda * decay**(cycle-1)``; otherwise the official code's fallback keeps a
    uniform random k of the candidates (its modular "centrality" needs the same features).
    """
    loss = _last_loss(ctx.state, 0.0)
    cand = top_k(loss, min(ctx.state.n, 2 * k))
    if "embedding" not in ctx.state.matrices:
        return Selection(ctx.rng.choice(cand, size=k, replace=False).astype(np.int64))
    term = ctx.diversity
    result = term.select(
        ctx.state.embedding[cand],
        loss[cand],
        k,
        ctx.cycle,
        ctx.rng,
        ctx.map_fn,
        function=term.function_or("fl"),
    )
    return Selection(cand[result.positions], details=term.details(result))

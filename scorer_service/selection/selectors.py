"""Selectors: a key per sample from its state, its id and a few statistics of the run.

Each is a small function registered by name with what the store needs to know about it
(:mod:`.registry`), and each is tested on known inputs. The round's selection is the budget's
largest keys (ties: lowest id), so a selector is top-k (DIHCL-Greedy, SPL), weighted sampling
without replacement as top-k of exponential-race keys ``w / E`` (DIHCL-Rand, -Exp) or of
Gumbel-perturbed log-weights (DoCL, whose weights are a softmax of its scores), a uniform
draw (random) or Thompson sampling (DIHCL-Beta); its random draws are keyed by (seed, round, sample
id), so the selection does not depend on how the store is sharded. Budget schedules: DIHCL shrinks
(paper: 0.85 per cycle to 0.2); the official DoCL and MCL code grow (x1.1 / x1.2 per cycle up to
0.9); SPL grows to all data (its threshold anneals until every sample is included).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from scorer_service.core import counter_rng, exact_sum
from scorer_service.core.reduce import Aggregate, Max, Min, Sum
from scorer_service.core.state import SampleState
from scorer_service.selection.registry import KeyContext, register, selector_spec
from scorer_service.selection.schedule import Budget


@register("random", score="seen", inclusion=lambda ctx, tau: np.full(ctx.state.n, 1.0 - tau))
def random_keys(ctx: KeyContext) -> np.ndarray:
    """Uniform without replacement: the honest control (same loop, same budget)."""
    return ctx.uniform()


@register("dihcl-greedy")
def greedy_keys(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Greedy (Alg. 1 line 7): the k samples of largest DIH."""
    return ctx.dih


@register("dihcl-rand")
def rand_keys(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Rand (Sec. 3.3): k draws without replacement with ``p ~ r`` (zero hardness drawn last)."""
    return ctx.race(np.maximum(ctx.dih, 0.0, out=ctx.buffer("keys")))


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


# DIHCL-Exp's probabilities in compiled loops, one C-library exp per value (see core.libm: the same
# rounding on every shard), into arrays numpy allocates (huge pages, see radix.sortable).
@nb.njit(cache=True, nogil=True)
def _exp_terms(r: np.ndarray, beta: float, divisor: float, top: float, out: np.ndarray,
               acc: np.ndarray, eligible: np.ndarray) -> np.ndarray:  # fmt: skip
    # ``acc``: the exact sum of the eligible terms (``eligible`` empty: all), in the same pass.
    every = eligible.shape[0] == 0
    for j in range(r.shape[0]):
        out[j] = term = math.exp(beta * (r[j] / divisor) - top)
        if every or eligible[j]:
            exact_sum.add(acc, term)
    return out


@nb.njit(cache=True, nogil=True)
def _exp_race(terms: np.ndarray, a: float, b: float, key: np.uint64, first: np.int64, out: np.ndarray,
              probability: np.ndarray) -> np.ndarray:  # fmt: skip
    for j in range(terms.shape[0]):
        p = a * terms[j] + b
        probability[j] = p
        out[j] = p / counter_rng.exponential(key, first + j)
    return out


@nb.njit(cache=True, nogil=True)
def _inverse_at(probability: np.ndarray, positions: np.ndarray, n: np.int64, out: np.ndarray) -> np.ndarray:
    for i in range(positions.shape[0]):
        out[i] = 1.0 / (n * np.float64(probability[positions[i]]))
    return out


def _exp_softmax_terms(ctx: KeyContext, acc: np.ndarray) -> np.ndarray:
    """``exp(beta * u - max(beta * u))`` of every sample, with ``u = r / mean(r)`` (official code)
    unless the paper's temperature is chosen; their sum over the pool is added to ``acc``."""
    beta = exp_temperature(ctx.params, ctx.cycle, ctx.n)
    mean = ctx.stats["dih_sum"] / ctx.n
    divisor = mean if not ctx.params.get("paper_temperature", False) and mean > 0 else 1.0
    top = beta * (ctx.stats["dih_max"] / divisor)
    eligible = np.zeros(0, dtype=bool) if ctx.eligible is None else ctx.eligible
    return _exp_terms(ctx.dih, beta, divisor, top, ctx.buffer("terms"), acc, eligible)


def _exp_moments(ctx: KeyContext) -> dict[str, Aggregate]:
    dih = ctx.pool(ctx.dih)
    return {"dih_sum": Sum.of(dih), "dih_max": Max.of(dih)}


def _exp_normalizer(ctx: KeyContext) -> dict[str, Aggregate]:
    # The terms serve the keys too: the probabilities are the very ones normalized here.
    acc = exact_sum.accumulator()
    ctx.memo["terms"] = _exp_softmax_terms(ctx, acc)
    return {"softmax_sum": Sum(exact_sum.total(acc))}


def _mixture(ctx: KeyContext) -> tuple[float, float]:
    """``p = a * term + b``: ``(1 - mix) softmax + mix / n``; the uniform share ``mix`` is EXP3's
    exploration (default 0.1), which bounds the importance weights."""
    mix = ctx.params.get("exploration", 0.1)
    return (1.0 - mix) / ctx.stats["softmax_sum"], mix / ctx.n


def exp_probability(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Exp's sampling probability of each sample, ``(1 - mix) softmax(beta u) + mix / n``
    (needs the statistics of both stages)."""
    a, b = _mixture(ctx)
    return a * _exp_softmax_terms(ctx, exact_sum.accumulator()) + b


def _exp_weights(ctx: KeyContext, positions: np.ndarray) -> np.ndarray:
    # 1 / (n p) with the probability each was drawn with: uniform sampling has weight 1, so DIH
    # keeps its scale; the exploration share caps it.
    out = np.empty(len(positions), dtype=np.float32)
    return _inverse_at(ctx.memo["probability"], positions, np.int64(ctx.n), out)


@register(
    "dihcl-exp",
    stages=(_exp_moments, _exp_normalizer),
    weights=_exp_weights,
    inclusion=lambda ctx, tau: -np.expm1(-ctx.memo["probability"] / tau),
)
def exp_keys(ctx: KeyContext) -> np.ndarray:
    """DIHCL-Exp (EXP3-like, Sec. 3.3): sample by :func:`exp_probability`, importance weight ``1 / (n p)``.

    Its keys are exponential races ``p / E``: a sample is selected when its key exceeds the cut's key
    tau, which it does with probability ``1 - exp(-p / tau)``."""
    a, b = _mixture(ctx)
    terms = ctx.memo.pop("terms")
    key = np.uint64(counter_rng.stream_key(ctx.seed, ctx.round, counter_rng.KEYS))
    ctx.memo["probability"] = probability = ctx.buffer("probability", np.float32)
    return _exp_race(terms, a, b, key, np.int64(ctx.first), terms, probability)  # keys over the terms


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


def _docl_floor(ctx: KeyContext) -> dict[str, Aggregate]:
    return {"docl_min": Min.of(ctx.pool(ctx.state.docl.astype(np.float64)))}


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
    return ctx.gumbel(tau * (ctx.state.docl - ctx.stats["docl_min"]))


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

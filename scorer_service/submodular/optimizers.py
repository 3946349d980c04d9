"""Greedy maximizers of a monotone submodular :class:`~.functions.Objective` under ``|S| <= k``.

* :func:`naive_greedy` -- Nemhauser, Wolsey & Fisher (1978): evaluate every remaining element each
  step; ``1 - 1/e`` guarantee, O(n k) evaluations. The test oracle.
* :func:`lazy_greedy` -- Minoux (1978): a max-heap of stale gains, which are upper bounds by
  submodularity; returns exactly naive greedy's sequence.
* :func:`stochastic_greedy` -- "lazier than lazy greedy" (Mirzasoleiman, Badanidiyuru, Karbasi,
  Vondrak & Krause, AAAI 2015): each step takes the best of ``s = ceil((n/k) ln(1/eps))`` elements
  drawn uniformly without replacement from the remaining ones; ``E[F(S)] >= (1 - 1/e - eps) OPT``
  with O(n ln(1/eps)) evaluations whatever k is.
* :func:`lazy_stochastic_greedy` -- stochastic greedy whose every step first spends up to ``s``
  evaluations on the lazy heap's largest stale bounds: when a fresh gain reaches the top, that step
  is exactly greedy's; otherwise it takes the best gain seen, from the heap or the sample. Each pick
  is at least as good as stochastic greedy's on the same sample, so its guarantee holds; what the
  uniform sample misses (the few elements whose hardness term dominates) the heap finds.

All four break ties between equal gains by the lowest index and return positions in selection
order. Their loops are compiled with numba and release the GIL, so partitions can be solved in
threads.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from scorer_service.submodular.functions import (
    FL_DENSE,
    Objective,
    dense_gains4,
    diversity_gain,
    diversity_update,
)
from scorer_service.submodular.gain_heap import better, gain_heap, pop_top, prefetch_children, sift_down
from scorer_service.submodular.setfunction import prefetch_gain

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)


@nb.njit(cache=True, nogil=True, inline="always")
def _splitmix(state: np.uint64) -> tuple:
    # splitmix64 (Steele, Lea & Flood 2014): a private stream per call, so results depend only on
    # the seed, not on which thread runs the block.
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return state, z ^ (z >> _S31)


@nb.njit(cache=True, nogil=True)
def _naive(kind: int, data: tuple, memo: np.ndarray, m: np.ndarray, w: float, k: int) -> np.ndarray:
    n = m.shape[0]
    out = np.empty(k, dtype=np.int64)
    taken = np.zeros(n, dtype=np.bool_)
    for t in range(k):
        best = -np.inf
        be = -1
        for e in range(n):
            if taken[e]:
                continue
            g = m[e] + w * diversity_gain(kind, data, memo, e)
            if g > best:
                best = g
                be = e
        taken[be] = True
        diversity_update(kind, data, memo, be)
        out[t] = be
    return out


@nb.njit(cache=True, nogil=True)
def _lazy(kind: int, data: tuple, memo: np.ndarray, m: np.ndarray, w: float, k: int) -> np.ndarray:
    n = m.shape[0]
    out = np.empty(k, dtype=np.int64)
    key, ids = gain_heap(kind, data, memo, m, w, n)
    fresh_at = np.zeros(n, dtype=np.int64)
    size = n
    for t in range(k):
        while True:
            e = ids[0]
            if fresh_at[e] == t:
                # A fresh gain on top beats every stale bound, hence every fresh gain: the greedy pick.
                size = pop_top(key, ids, size)
                break
            prefetch_children(kind, data, ids, size)
            key[0] = m[e] + w * diversity_gain(kind, data, memo, e)
            fresh_at[e] = t
            sift_down(key, ids, 0, size)
        diversity_update(kind, data, memo, e)
        out[t] = e
    return out


@nb.njit(cache=True, nogil=True)
def _evaluate(
    kind: int,
    data: tuple,
    memo: np.ndarray,
    m: np.ndarray,
    w: float,
    quad: np.ndarray,
    g: int,
    gains: np.ndarray,
    bound: np.ndarray,
    best: float,
    be: int,
) -> tuple:
    # Fresh gains of quad[:g]: recorded as bounds, and folded into the running (best, be).
    if kind == FL_DENSE:
        for i in range(g, 4):
            quad[i] = quad[0]
        dense_gains4(data[0], memo, quad, gains)
    else:
        for i in range(g):
            gains[i] = diversity_gain(kind, data, memo, quad[i])
    for i in range(g):
        e = quad[i]
        v = m[e] + w * gains[i]
        bound[e] = v
        if be < 0 or better(v, e, best, be):
            best = v
            be = e
    return best, be


@nb.njit(cache=True, nogil=True)
def _probe(
    kind: int,
    data: tuple,
    memo: np.ndarray,
    m: np.ndarray,
    w: float,
    t: int,
    budget: int,
    key: np.ndarray,
    ids: np.ndarray,
    size: int,
    bound: np.ndarray,
    fresh_at: np.ndarray,
    taken: np.ndarray,
) -> tuple:
    # Lazy greedy's loop on the heap of stale bounds, for at most `budget` evaluations. Returns
    # (greedy's exact pick or -1, the best fresh gain seen and its element, the heap's new size).
    best = -np.inf
    be = -1
    evaluations = 0
    while size > 0:
        e = ids[0]
        if taken[e]:  # picked from a sample at an earlier step
            size = pop_top(key, ids, size)
            continue
        if fresh_at[e] == t + 1 and key[0] == bound[e]:
            # A fresh gain on top beats every stale bound, hence every fresh gain: the greedy pick.
            return e, best, be, pop_top(key, ids, size)
        if bound[e] < key[0]:  # a tighter bound from a sample: no evaluation needed to sink it
            key[0] = bound[e]
            sift_down(key, ids, 0, size)
            continue
        if evaluations == budget:
            break
        prefetch_children(kind, data, ids, size)
        v = m[e] + w * diversity_gain(kind, data, memo, e)
        evaluations += 1
        key[0] = v
        bound[e] = v
        fresh_at[e] = t + 1
        if be < 0 or better(v, e, best, be):
            best = v
            be = e
        sift_down(key, ids, 0, size)
    return -1, best, be, size


@nb.njit(cache=True, nogil=True)
def _stochastic(
    kind: int,
    data: tuple,
    memo: np.ndarray,
    m: np.ndarray,
    w: float,
    k: int,
    s: int,
    seed: np.uint64,
    probe: int,
) -> np.ndarray:
    n = m.shape[0]
    out = np.empty(k, dtype=np.int64)
    taken = np.zeros(n, dtype=np.bool_)
    drawn_at = np.zeros(n, dtype=np.int64)
    # Gains evaluated at earlier steps stay valid upper bounds (submodularity): a candidate whose
    # bound cannot beat the best fresh gain of this step is skipped unevaluated (Sec. 3 of the paper).
    bound = np.full(n, np.inf)
    # With a probe, every bound starts evaluated, in lazy greedy's heap (the step it was fresh at).
    size = n if probe > 0 else 0
    key, ids = gain_heap(kind, data, memo, m, w, size)
    fresh_at = np.ones(size, dtype=np.int64)
    for i in range(size):
        bound[ids[i]] = key[i]
    cand = np.empty(max(s, 1), dtype=np.int64)
    quad = np.empty(4, dtype=np.int64)
    gains = np.empty(4)
    state = seed
    for t in range(k):
        best, be = -np.inf, -1
        if probe > 0:
            pick, best, be, size = _probe(
                kind, data, memo, m, w, t, probe, key, ids, size, bound, fresh_at, taken
            )
            if pick >= 0:
                taken[pick] = True
                diversity_update(kind, data, memo, pick)
                out[t] = pick
                continue
        remaining = n - t
        if 2 * s >= remaining:
            # Rejection would need many draws per hit: take the whole remainder (only in the last
            # O(s) steps, or when k is a handful of elements).
            if cand.shape[0] < remaining:
                cand = np.empty(remaining, dtype=np.int64)
            c = 0
            for e in range(n):
                if not taken[e]:
                    cand[c] = e
                    c += 1
        else:
            c = 0
            while c < s:
                state, r = _splitmix(state)
                # numba types every e as int64, which mypy cannot tell from the loop's int above.
                e = np.int64(((r >> _S32) * np.uint64(n)) >> _S32)  # type: ignore[assignment]
                if taken[e] or drawn_at[e] == t + 1:
                    continue
                drawn_at[e] = t + 1
                prefetch_gain(kind, data, e)
                cand[c] = e
                c += 1
        # Gather the bounds first, evaluate the `group` most promising candidates, then only those
        # whose bound can still beat the best fresh gain (dense rows four at a time: they stream
        # from memory together).
        group = 4 if kind == FL_DENSE else 1
        left = c
        for g in range(min(group, c)):
            top = 0
            for i in range(1, left):
                if better(bound[cand[i]], cand[i], bound[cand[top]], cand[top]):
                    top = i
            quad[g] = cand[top]
            left -= 1
            cand[top] = cand[left]
        best, be = _evaluate(kind, data, memo, m, w, quad, min(group, c), gains, bound, best, be)
        g = 0
        for i in range(left):
            e = cand[i]
            if better(bound[e], e, best, be):
                quad[g] = e
                g += 1
                if g == group:
                    best, be = _evaluate(kind, data, memo, m, w, quad, g, gains, bound, best, be)
                    g = 0
        if g > 0:
            best, be = _evaluate(kind, data, memo, m, w, quad, g, gains, bound, best, be)
        taken[be] = True
        diversity_update(kind, data, memo, be)
        out[t] = be
    return out


def _check_k(f: Objective, k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 0 <= k <= f.n:
        raise ValueError(f"k must be in [0, {f.n}], got {k}")
    return int(k)


def naive_greedy(f: Objective, k: int) -> np.ndarray:
    """Greedy (Nemhauser et al. 1978): ``k`` steps, each adding the element of largest ``F(e | S)``.

    O(n k) gain evaluations; ``F(S) >= (1 - 1/e) OPT``. Runs on a fresh memo; ``f`` is not modified.
    """
    k = _check_k(f, k)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    g = f.diversity
    return _naive(g.kind, g.data, g.new_memo(), f.modular, f.weight, k)


def lazy_greedy(f: Objective, k: int) -> np.ndarray:
    """Lazy greedy (Minoux 1978, "accelerated greedy"): the same sequence as :func:`naive_greedy`.

    Keeps every element's last computed gain in a max-heap ordered by (gain, -index); a popped
    stale gain is recomputed and pushed back, a popped fresh one is selected. Exact because stale
    gains are upper bounds and the gain kernels are monotone after rounding too.
    """
    k = _check_k(f, k)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    g = f.diversity
    return _lazy(g.kind, g.data, g.new_memo(), f.modular, f.weight, k)


def sample_size(n: int, k: int, epsilon: float) -> int:
    """``s = ceil((n / k) ln(1 / eps))``, the per-step sample of stochastic greedy (Mirzasoleiman et al.)."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    return max(1, math.ceil(n / max(k, 1) * math.log(1.0 / epsilon)))


def stochastic_greedy(
    f: Objective, k: int, *, epsilon: float = 0.1, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Stochastic greedy, "lazier than lazy greedy" (Mirzasoleiman et al., AAAI 2015, Alg. 1).

    Each of the ``k`` steps draws ``s = ceil((n/k) ln(1/eps))`` distinct candidates by rejection
    against a selection mask (O(1) expected work per draw, none per remaining element) and adds the
    one of largest ``F(e | S)``; gains are computed only for candidates whose stale bound could
    still win, which keeps the result of the full evaluation. ``E[F(S)] >= (1 - 1/e - eps) OPT``.
    The random stream is seeded from ``rng`` (default: fresh entropy).
    """
    return _run_stochastic(f, k, epsilon, rng, probe=False)


def lazy_stochastic_greedy(
    f: Objective, k: int, *, epsilon: float = 0.1, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Stochastic greedy with a lazy probe: each step first runs lazy greedy's loop on the heap of
    stale gains for at most ``s = ceil((n/k) ln(1/eps))`` evaluations (the sample's size). If a
    fresh gain reaches the top of the heap, it is greedy's exact pick; otherwise the step draws
    stochastic greedy's sample and adds the best gain seen in either.

    Every pick is at least as good as the best of the sample, so stochastic greedy's
    ``E[F(S)] >= (1 - 1/e - eps) OPT`` holds; the probe finds the elements of largest bound, which
    a uniform sample sees only with probability ``s / n``: with a hardness term, the few samples it
    makes worth most. At most twice stochastic greedy's evaluations per step, plus one pass over all
    ``n`` to fill the heap.
    """
    return _run_stochastic(f, k, epsilon, rng, probe=True)


def _run_stochastic(
    f: Objective, k: int, epsilon: float, rng: np.random.Generator | None, *, probe: bool
) -> np.ndarray:
    k = _check_k(f, k)
    s = sample_size(f.n, k, epsilon)
    rng = rng if rng is not None else np.random.default_rng()
    seed = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    g = f.diversity
    return _stochastic(g.kind, g.data, g.new_memo(), f.modular, f.weight, k, s, seed, s if probe else 0)


def _naive_any(
    f: Objective, k: int, *, epsilon: float = 0.1, rng: np.random.Generator | None = None
) -> np.ndarray:
    return naive_greedy(f, k)


def _lazy_any(
    f: Objective, k: int, *, epsilon: float = 0.1, rng: np.random.Generator | None = None
) -> np.ndarray:
    return lazy_greedy(f, k)


OPTIMIZERS = {
    "naive": _naive_any,
    "lazy": _lazy_any,
    "stochastic": stochastic_greedy,
    "lazy-stochastic": lazy_stochastic_greedy,
}
"""Optimizers by name, all called as ``opt(f, k, *, epsilon, rng)`` (the deterministic ones ignore both)."""

# "auto": the most exact optimizer whose time fits a round at that many candidates. Measured on
# clustered sketches with DIH-like and flat scores (BENCHMARKS.md "Selection"):
# - lazy greedy is exact, but its time grows past a round's budget with m (0.3-0.6 s for
#   feature-based at 50,000 candidates without a hardness term, 16-28 s at 640,000);
# - plain stochastic greedy at epsilon 0.1 reaches only 92-98.6 % of lazy greedy's objective with
#   a hardness term: a sample of (m/k) ln 10 candidates sees the few samples it makes worth most
#   with probability s/m;
# - the lazy probe stays within 0.5 % of lazy greedy at 50,000 candidates for about twice
#   stochastic greedy's time, which past 200,000 candidates no longer fits (kNN facility location
#   over 640,000: 4.7 s against 3.7 s with the graph build, of a 5 s budget).
AUTO_LAZY_MAX = 20_000
AUTO_PROBE_MAX = 200_000
OPTIMIZER_CHOICES = (*OPTIMIZERS, "auto")


def choose_optimizer(name: str, m: int) -> str:
    """The optimizer ``name`` stands for over ``m`` candidates ("auto": lazy greedy up to
    :data:`AUTO_LAZY_MAX`, lazy-stochastic greedy up to :data:`AUTO_PROBE_MAX`, stochastic greedy
    above)."""
    if name != "auto":
        return name
    if m <= AUTO_LAZY_MAX:
        return "lazy"
    return "lazy-stochastic" if m <= AUTO_PROBE_MAX else "stochastic"

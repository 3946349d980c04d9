"""Weighted sampling without replacement over score vectors of any length."""

from __future__ import annotations

import numpy as np

from scorer_service.core.ranking import top_k


def weighted_sample(logits: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``k`` distinct indices, sequentially, with probabilities ``softmax(logits)`` among the rest.

    Gumbel-top-k: ``argtopk(logits + Gumbel noise)`` has exactly the law of successive draws
    without replacement (Efraimidis & Spirakis 2006; Kool et al. 2019), in O(n) rather than
    ``Generator.choice``'s O(n k). Returned in draw order. ``-inf`` logits are never drawn.
    """
    n = logits.shape[0]
    possible = int(np.count_nonzero(np.isfinite(logits)))
    if not 0 <= k <= possible:
        raise ValueError(f"k must be in [0, {possible}] (samples with non-zero probability), got {k}")
    keys = logits + rng.gumbel(size=n)
    return top_k(keys, k)


def log_weights(weights: np.ndarray) -> np.ndarray:
    """``log(weights)`` with zero weights mapped to ``-inf`` (never drawn), without warnings."""
    out = np.full(weights.shape, -np.inf)
    pos = weights > 0
    out[pos] = np.log(weights[pos])
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-d array."""
    z = np.exp(x - np.max(x))
    return z / z.sum()

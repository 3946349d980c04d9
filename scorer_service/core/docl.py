"""DoCL (Zhou, Wang, Bilmes, AISTATS 2021) building blocks: output sketches and the score update.

Score of sample i (official code ``tianyizhou/DoCL``, ALGORITHMS.md §2.2)::

    a_i = <onehot(y_i) - softmax(z_i / T), z_i^now - z_i^prev> / (rho_i / mean(rho)),
    rho_i = (sum of learning rates since i was last observed) ** 0.1

i.e. residual times output change, a first-order estimate of the loss decrease. The score is a
running average ``score <- 0.5 * score + 0.5 * a`` over observations.

Storing n x C logits does not scale with the number of classes C, so trainers send a fixed random
projection of the residual and the logits (``OutputSketch``); the inner product of two projections is
an unbiased estimate of the exact inner product (Johnson-Lindenstrauss). With few classes the
"projection" is the identity and everything is exact. The sketch itself is part of the wire schema
(:mod:`scorer_service.core.wire.batch`): trainers build it, the store reads its columns.
"""

from __future__ import annotations

import numpy as np


def residual(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """onehot(y) - softmax(z / T) for (b, C) logits and (b,) integer labels; rows sum to 0.

    Default T = 1 (paper's ``y - f(x)``); the official code uses softmax(0.4 z), i.e. T = 2.5.
    Returns float64 for float64 input, float32 otherwise.
    """
    z = np.asarray(logits)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"expected logits (b, C) and labels (b,), got {z.shape} and {y.shape}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in [0, {z.shape[1]})")
    z = z.astype(np.result_type(z.dtype, np.float32)) / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    r: np.ndarray = -e / e.sum(axis=1, keepdims=True)
    r[np.arange(z.shape[0]), y] += 1.0
    return r


def docl_observation(
    residual_sketch: np.ndarray,
    logits_now_sketch: np.ndarray,
    logits_prev_sketch: np.ndarray,
    lr_since_last_seen: np.ndarray,
    exponent: float = 0.1,
) -> np.ndarray:
    """One DoCL observation per sample (official code, ALGORITHMS.md §2.2); float64, shape (b,).

    a_i = <r_i, z_now_i - z_prev_i> / (rho_i / mean(rho)), rho_i = lr_since_last_seen_i ** exponent,
    the mean taken over this call's samples (the code averages over the set being updated). The
    paper's slides give no normalization; the code's exponent 0.1 makes it mild. Sketches are (b, w)
    arrays from the same :class:`~scorer_service.core.wire.OutputSketch` (any float dtype; computed in
    float64), and the
    residual must be the one taken at the "now" forward pass. ``lr_since_last_seen`` must be finite
    and positive: it is only defined for samples with an earlier observation (first observations
    initialize the score instead, see :func:`docl_update`).
    """
    r = np.asarray(residual_sketch, dtype=np.float64)
    now = np.asarray(logits_now_sketch, dtype=np.float64)
    prev = np.asarray(logits_prev_sketch, dtype=np.float64)
    lr = np.asarray(lr_since_last_seen, dtype=np.float64)
    if r.ndim != 2 or now.shape != r.shape or prev.shape != r.shape or lr.shape != (r.shape[0],):
        raise ValueError(
            f"expected three (b, w) sketches and (b,) lr sums, got {r.shape}, {now.shape}, "
            f"{prev.shape}, {lr.shape}"
        )
    if not np.all(np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError("lr_since_last_seen must be finite and positive")
    if r.shape[0] == 0:
        return np.zeros(0)
    rho = lr**exponent
    observation: np.ndarray = np.einsum("bw,bw->b", r, now - prev) * (rho.mean() / rho)
    return observation


def docl_update(
    score: np.ndarray, observation: np.ndarray, first_seen_mask: np.ndarray, weight: float = 0.5
) -> np.ndarray:
    """Running average of DoCL observations (official code, ``ema_decay`` 0.5); returns a new array.

    For the observed samples (all entries of the arguments, gathered by the caller):
    ``(1 - weight) * score + weight * observation``, or ``observation`` where ``first_seen_mask``
    (the sample's first observation initializes the score directly). The inputs are not modified;
    the result has ``score``'s dtype.
    """
    score = np.asarray(score)
    obs = np.asarray(observation, dtype=np.float64)
    first = np.asarray(first_seen_mask, dtype=bool)
    if obs.shape != score.shape or first.shape != score.shape:
        raise ValueError(f"shapes differ: {score.shape}, {obs.shape}, {first.shape}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    blended = (1.0 - weight) * score.astype(np.float64) + weight * obs
    return np.where(first, obs, blended).astype(score.dtype)

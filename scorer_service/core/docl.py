"""DoCL (Zhou, Wang, Bilmes, AISTATS 2021) building blocks: output sketches and the score update.

Score of sample i (official code ``tianyizhou/DoCL``, ALGORITHMS.md §2.2)::

    a_i = <onehot(y_i) - softmax(z_i / T), z_i^now - z_i^prev> / (rho_i / mean(rho)),
    rho_i = (sum of learning rates since i was last observed) ** 0.1

i.e. residual times output change, a first-order estimate of the loss decrease. The score is a
running average ``score <- 0.5 * score + 0.5 * a`` over observations.

Storing n x C logits does not scale with the number of classes C, so trainers send a fixed random
projection of the residual and the logits (``OutputSketch``); the inner product of two projections is
an unbiased estimate of the exact inner product (Johnson-Lindenstrauss). With few classes the
"projection" is the identity and everything is exact.

numpy only: this module runs inside the store and inside trainers.
"""

from __future__ import annotations

import numpy as np

EXACT_MAX_CLASSES = 128
# float16 overflows to inf above this; an inf sketch would turn every later score of the sample into NaN.
_FLOAT16_MAX = float(np.finfo(np.float16).max)


class OutputSketch:
    """A fixed random projection R^C -> R^m for DoCL byproducts (logits and residuals).

    ``exact`` (C <= 128): the identity, width C, float32 output; inner products are exact.
    Otherwise: a Rademacher matrix P with entries +-1/sqrt(m), so E[P P^T] = I and
    E[<xP, yP>] = <x, y>, with standard deviation ~ ||x|| ||y|| / sqrt(m); output is float16
    (DESIGN.md §4). The signs are the top bits of a PCG64 stream seeded with ``seed``: integer
    arithmetic only, so every rank on every platform and numpy version builds the same matrix from
    (num_classes, dim, seed) alone (numpy keeps bit generator streams stable; its distribution
    samplers, e.g. Gaussian, are not guaranteed to be).
    """

    def __init__(self, num_classes: int, dim: int = 32, seed: int = 0) -> None:
        if num_classes < 1 or dim < 1:
            raise ValueError(f"num_classes and dim must be positive, got {num_classes}, {dim}")
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.seed = int(seed)
        self.exact = self.num_classes <= EXACT_MAX_CLASSES
        self._matrix: np.ndarray | None = None
        if not self.exact:
            raw = np.random.PCG64(self.seed).random_raw(self.num_classes * self.dim)
            signs = (raw >> np.uint64(63)).astype(np.float32).reshape(self.num_classes, self.dim)
            self._matrix = (2.0 * signs - 1.0) / np.float32(np.sqrt(self.dim))

    @property
    def width(self) -> int:
        """Number of stored values per sample: C in exact mode, else m."""
        return self.num_classes if self.exact else self.dim

    @property
    def dtype(self) -> np.dtype:
        """dtype of :meth:`project`'s output: float32 in exact mode, else float16."""
        return np.dtype(np.float32 if self.exact else np.float16)

    @property
    def matrix(self) -> np.ndarray | None:
        """The (C, m) float32 projection (e.g. to project on an accelerator), or None in exact mode."""
        return self._matrix

    def project(self, x: np.ndarray) -> np.ndarray:
        """Project a (b, C) array to (b, width) in :attr:`dtype`."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.num_classes:
            raise ValueError(f"expected shape (b, {self.num_classes}), got {x.shape}")
        if self._matrix is None:
            return x.astype(np.float32)
        out = x.astype(np.float32, copy=False) @ self._matrix
        return np.clip(out, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)


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
    r = -e / e.sum(axis=1, keepdims=True)
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
    arrays from the same :class:`OutputSketch` (any float dtype; computed in float64), and the
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
    return np.einsum("bw,bw->b", r, now - prev) * (rho.mean() / rho)


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

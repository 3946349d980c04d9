"""The entry point the store calls: keep k of m candidates by hardness + lambda * diversity."""

from __future__ import annotations

import math

import numpy as np

from scorer_service.submodular.functions import FUNCTIONS, mean_pairwise_distance
from scorer_service.submodular.optimizers import OPTIMIZERS
from scorer_service.submodular.partition import MapFn, build_objective, partitioned_select

PARTITION_ABOVE = {"fl": 8192, "fl-knn": 16384, "feature": 262144, "feature-log": 262144}
"""Candidate sets larger than this are partitioned automatically (dense FL: a 256 MiB kernel;
kNN FL: an exact global kNN graph costs O(m^2) time; feature-based: for cache locality)."""

BLOCK_SIZE = {"fl": 2048, "fl-knn": 2048, "feature": 65536, "feature-log": 65536}
"""Largest block when partitioning (random blocks, or label groups split to this size)."""


def rescale_scores(scores: np.ndarray) -> np.ndarray:
    """Hardness scores mapped affinely to [0, 1] (min -> 0, max -> 1; all equal -> all 0)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s.copy()
    lo, hi = float(s.min()), float(s.max())
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)


def _validate(
    embeddings: np.ndarray,
    scores: np.ndarray,
    k: int,
    function: str,
    lam: float,
    optimizer: str,
    epsilon: float,
    partitions: np.ndarray | None,
) -> None:
    if not isinstance(embeddings, np.ndarray) or embeddings.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d array (m, d), got ndim={np.ndim(embeddings)}")
    if not isinstance(scores, np.ndarray) or scores.ndim != 1:
        raise ValueError(f"scores must be a 1-d array (m,), got ndim={np.ndim(scores)}")
    m = scores.shape[0]
    if embeddings.shape[0] != m:
        raise ValueError(f"embeddings has {embeddings.shape[0]} rows but scores has length {m}")
    if not np.issubdtype(embeddings.dtype, np.number) or not np.issubdtype(scores.dtype, np.number):
        raise ValueError("embeddings and scores must be numeric arrays")
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 0 <= k <= m:
        raise ValueError(f"k must be in [0, {m}] (the number of candidates), got {k}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or infinite values")
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; expected one of {', '.join(sorted(FUNCTIONS))}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(sorted(OPTIMIZERS))}")
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    if not (isinstance(epsilon, int | float) and 0 < epsilon < 1):
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
    if partitions is not None:
        if not isinstance(partitions, np.ndarray) or partitions.shape != (m,):
            raise ValueError(f"partitions must be an array of shape ({m},), got shape {np.shape(partitions)}")
        if not np.issubdtype(partitions.dtype, np.integer):
            raise ValueError(f"partitions must hold integer labels, got dtype {partitions.dtype}")


def select_diverse(
    embeddings: np.ndarray,
    scores: np.ndarray,
    k: int,
    *,
    function: str = "fl",
    lam: float = 1.0,
    optimizer: str = "stochastic",
    epsilon: float = 0.1,
    partitions: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    map_fn: MapFn | None = None,
    merge: bool = False,
    max_block: int | None = None,
) -> np.ndarray:
    """Keep ``k`` of the m candidates maximizing ``sum_{i in S} h_i + lam * G_hat(S)`` (DIHCL Eq. 3).

    Scales: the hardness scores are mapped affinely to ``h`` in [0, 1] (:func:`rescale_scores`;
    DIH values span 10-2000 and only their order and relative gaps matter), and the diversity term
    ``G`` (``function``: "fl" dense Gaussian facility location, "fl-knn" its 10-NN graph version,
    "feature"/"feature-log" concave-over-modular on the sketches' positive and negative parts) is
    normalized as ``G_hat(S) = k * G(S) / G(V)`` over the ground set V it is solved on. Both terms
    are then at most k on a k-subset (average gain per selected element <= 1), so ``lam = 1``
    weighs hardness and diversity equally and ``lam = 0`` is plain top-k. The kernel width sigma is
    the mean pairwise distance of all m candidates (estimated from 4096 random pairs).

    Partitioning: if ``partitions`` (integer labels, e.g. classes) is given, or m exceeds
    ``PARTITION_ABOVE[function]`` (8192 dense FL, 16384 kNN FL, 262144 feature-based), the
    candidates are split into blocks of at most ``max_block`` (default ``BLOCK_SIZE[function]``:
    2048, 2048, 65536) -- label groups, larger ones split at random, or random blocks -- each
    block keeps a share of k proportional to its size, and blocks are solved through ``map_fn``
    (default: a thread pool). ``merge`` adds a GreeDi second round (``partition.partitioned_select``).
    Then V above is each block.

    ``optimizer``: "stochastic" (lazier than lazy greedy, ``epsilon``), "lazy" (exact greedy) or
    "naive". ``rng`` seeds sigma, the blocks and stochastic greedy (default: fresh entropy).

    Returns k distinct int64 positions into the candidate arrays, in selection order within each
    block (blocks concatenated). Raises ValueError on malformed input (wrong ndim, mismatched
    lengths, k outside [0, m], NaN or infinite values, unknown names).
    """
    _validate(embeddings, scores, k, function, lam, optimizer, epsilon, partitions)
    m = scores.shape[0]
    k = int(k)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k == m:
        return np.arange(m, dtype=np.int64)
    rng = rng if rng is not None else np.random.default_rng()
    h = rescale_scores(scores)
    sigma = mean_pairwise_distance(embeddings, rng)
    if partitions is None and m <= PARTITION_ABOVE[function]:
        f = build_objective(function, embeddings, h, k, float(lam), sigma=sigma, rng=rng)
        return OPTIMIZERS[optimizer](f, k, epsilon=epsilon, rng=rng)
    return partitioned_select(
        embeddings,
        h,
        k,
        function=function,
        lam=float(lam),
        optimizer=optimizer,
        epsilon=epsilon,
        sigma=sigma,
        max_block=max_block or BLOCK_SIZE[function],
        rng=rng,
        labels=partitions,
        map_fn=map_fn,
        merge=merge,
    )

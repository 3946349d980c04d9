"""The entry point the store calls: keep k of m candidates by hardness + lambda * diversity."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scorer_service.submodular.functions import FUNCTIONS, mean_pairwise_distance
from scorer_service.submodular.ground_set import GroundSet, build_ground_set
from scorer_service.submodular.optimizers import OPTIMIZER_CHOICES, OPTIMIZERS, choose_optimizer
from scorer_service.submodular.partition import (
    MapFn,
    build_objective,
    dense_block_capacity,
    make_blocks,
    partitioned_select,
)

MEMORY_BUDGET_BYTES = 64 * 2**20
"""Default memory for the dense kernels solved at once, and for a dense merge round's kernel.

64 MiB on 2 cores gives blocks of 2,896: 99.6-100 % of the global lazy greedy at 50k on clustered
sketches, and a 640k-candidate round in about 4 s (256 MiB: blocks of 5,792, 99.8-100 %, 8 s)."""

REFERENCE_SIZE = 8192
"""Candidates on which a partitioned pick is compared with a global solve (see :func:`solve_diverse`)."""


@dataclass(frozen=True)
class DiverseResult:
    """What :func:`solve_diverse` picked and how.

    ``partitioning``: "global" (one solve over all candidates), "label" (blocks by the given
    labels) or "kmeans" (k-means cells of the sketches); ``blocks``: how many blocks were solved;
    ``merged``: whether a GreeDi merge round chose the final k from the blocks' picks; ``graph``:
    how the kNN graph was built ("exact", or "ivf": exact within k-means cells), None for the other
    functions; ``optimizer``: the one that ran. ``relative_objective``: ``F(pick) / F(one global
    solve)``, where the global solve is the same optimizer on the exact structures (dense kernel,
    exact kNN graph, features) over all candidates; ``relative_objective_estimated``: whether that
    ratio was measured on a uniform sample of the candidates instead of on all of them (see
    :func:`solve_diverse`).
    """

    positions: np.ndarray
    partitioning: str
    blocks: int
    merged: bool
    relative_objective: float | None
    relative_objective_estimated: bool
    graph: str | None = None
    optimizer: str = "lazy"


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
    memory_budget_bytes: int,
    reference_size: int,
    max_block: int | None,
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
    if optimizer not in OPTIMIZER_CHOICES:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZER_CHOICES)}")
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    if not (isinstance(epsilon, int | float) and 0 < epsilon < 1):
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
    for name, value, low in (
        ("memory_budget_bytes", memory_budget_bytes, 1),
        ("reference_size", reference_size, 0),
        ("max_block", 1 if max_block is None else max_block, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if partitions is not None:
        if not isinstance(partitions, np.ndarray) or partitions.shape != (m,):
            raise ValueError(f"partitions must be an array of shape ({m},), got shape {np.shape(partitions)}")
        if not np.issubdtype(partitions.dtype, np.integer):
            raise ValueError(f"partitions must hold integer labels, got dtype {partitions.dtype}")


def _restrict(groups: list[np.ndarray], m: int, sample: np.ndarray) -> list[np.ndarray]:
    # The same groups, on the sample: positions into `sample` (sorted) of the members it holds.
    label = np.empty(m, dtype=np.int64)
    for i, g in enumerate(groups):
        label[g] = i
    sub = label[sample]
    order = np.argsort(sub, kind="stable")
    return np.split(order.astype(np.int64), np.flatnonzero(np.diff(sub[order])) + 1)


def _relative_objective(
    ground: GroundSet,
    k: int,
    lam: float,
    picked: np.ndarray,
    blocks: list[np.ndarray],
    graph_cells: list[np.ndarray] | None,
    *,
    optimizer: str,
    epsilon: float,
    merge: bool,
    memory_budget_bytes: int,
    reference_size: int,
    map_fn: MapFn | None,
    rng: np.random.Generator,
) -> tuple[float, bool]:
    m = ground.m
    w = min(m, reference_size)
    if ground.function == "fl":
        w = min(w, math.isqrt(memory_budget_bytes // 4))
    exact = w == m
    sample = np.arange(m) if exact else np.sort(rng.choice(m, w, replace=False))
    kw = k if exact else min(w - 1, max(1, round(k * w / m)))
    x, h = ground.embeddings[sample], ground.modular[sample]
    f = build_objective(ground.function, x, h, kw, lam, sigma=ground.sigma, rng=rng)
    best = f.evaluate(OPTIMIZERS[optimizer](f, kw, epsilon=epsilon, rng=rng))
    if not exact:
        cells = None if graph_cells is None else _restrict(graph_cells, m, sample)
        sub = build_ground_set(
            ground.function, x, h, kw, lam, sigma=ground.sigma, seed=0, graph_cells=cells or [np.arange(w)]
        )
        picked, _ = partitioned_select(
            sub,
            kw,
            _restrict(blocks, m, sample),
            optimizer=optimizer,
            epsilon=epsilon,
            rng=rng,
            map_fn=map_fn,
            merge=merge,
            memory_budget_bytes=memory_budget_bytes,
        )
    return (f.evaluate(picked) / best if best > 0 else 1.0), not exact


def solve_diverse(
    embeddings: np.ndarray,
    scores: np.ndarray,
    k: int,
    *,
    function: str = "fl",
    lam: float = 1.0,
    optimizer: str = "auto",
    epsilon: float = 0.1,
    partitions: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    map_fn: MapFn | None = None,
    merge: bool | None = None,
    max_block: int | None = None,
    memory_budget_bytes: int = MEMORY_BUDGET_BYTES,
    reference_size: int = REFERENCE_SIZE,
) -> DiverseResult:
    """Keep ``k`` of the m candidates maximizing ``sum_{i in S} h_i + lam * G_hat(S)`` (DIHCL Eq. 3).

    Scales: the hardness scores are mapped affinely to ``h`` in [0, 1] (:func:`rescale_scores`;
    DIH values span 10-2000 and only their order and relative gaps matter), and the diversity term
    ``G`` (``function``: "fl" dense Gaussian facility location, "fl-knn" its 10-NN graph version,
    "feature"/"feature-log" concave-over-modular on the sketches' positive and negative parts) is
    normalized as ``G_hat(S) = k * G(S) / G(V)`` over all m candidates V. Both terms are then at
    most k on a k-subset (average gain per selected element <= 1), so ``lam = 1`` weighs hardness
    and diversity equally and ``lam = 0`` is plain top-k. The kernel width sigma is the mean
    pairwise distance of the candidates (estimated from 4096 random pairs).

    Structures: the kNN graph is exact up to ``neighbours.EXACT_KNN_MAX`` candidates and an IVF
    graph above (exact neighbours within faiss k-means cells); it and the features are built once
    over all candidates. The dense kernel is quadratic, so dense facility location is solved in
    blocks when m exceeds the largest block whose kernels fit ``memory_budget_bytes`` with one
    block per core at once (64 MiB on 2 cores: 2,896).

    Partitioning (``partitioning`` in the result): with ``partitions`` (integer labels, e.g.
    classes) one block per label ("label"); otherwise k-means cells of the sketches when dense
    facility location needs blocks or m exceeds ``max_block`` ("kmeans"); else one global solve
    ("global"). Blocks larger than the capacity (or ``max_block``) are split by k-means. Each block
    keeps a share of k proportional to its size and blocks are solved through ``map_fn`` (default:
    a thread pool); with more than one block a GreeDi merge round is on unless ``merge=False``
    (``partition.partitioned_select``).

    Relative objective: None when ``reference_size`` is 0. After a global solve on exact
    structures it is 1. Otherwise a global solve is run for comparison: on all candidates when m
    <= ``reference_size`` (the exact ratio; for dense facility location also at most the largest
    kernel within the memory budget), else on a uniform sample W of ``reference_size``
    candidates with ``k_W = round(k |W| / m)``, where the same partitioned pipeline is rerun on W
    -- the same blocks and kNN-graph cells, restricted to W -- and the ratio of the two on W's
    objective is reported as an estimate (``relative_objective_estimated``). For the IVF kNN graph
    the estimate is rough: the restricted cells hold far fewer points than the real ones (on
    clustered sketches at 200k it read 92.8-96.3 % where the true ratio was 96.1-97.2 %).

    ``optimizer``: "stochastic" (lazier than lazy greedy, ``epsilon``), "lazy-stochastic" (the same
    with a probe of lazy greedy's heap each step), "lazy" (exact greedy), "naive", or "auto"
    (default, :func:`.optimizers.choose_optimizer`: lazy greedy on small candidate sets, the
    lazy-stochastic one on larger, stochastic greedy on the largest; the result's ``optimizer`` says
    which ran). ``rng`` seeds sigma, the k-means cells, the blocks, the sample and the stochastic
    optimizers (default: fresh entropy).

    Positions are k distinct int64 indices into the candidate arrays, in selection order (within
    each block, blocks concatenated, when no merge round ran). Raises ValueError on malformed
    input (wrong ndim, mismatched lengths, k outside [0, m], NaN or infinite values, unknown names).
    """
    _validate(
        embeddings,
        scores,
        k,
        function,
        lam,
        optimizer,
        epsilon,
        partitions,
        memory_budget_bytes,
        reference_size,
        max_block,
    )
    m = scores.shape[0]
    k = int(k)
    optimizer = choose_optimizer(optimizer, m)
    if k == 0 or k == m:
        pos = np.arange(k, dtype=np.int64)
        relative = None if reference_size == 0 else 1.0
        return DiverseResult(pos, "global", 1, False, relative, False, None, optimizer)
    rng = rng if rng is not None else np.random.default_rng()
    h = rescale_scores(scores)
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    sigma = mean_pairwise_distance(x, rng)
    seed = int(rng.integers(0, 2**31 - 1))
    cap = max_block or (dense_block_capacity(memory_budget_bytes) if function == "fl" else m)
    if partitions is not None:
        partitioning, blocks = "label", make_blocks(x, cap, seed, partitions)
    elif m > cap:
        partitioning, blocks = "kmeans", make_blocks(x, cap, seed)
    else:
        partitioning, blocks = "global", [np.arange(m, dtype=np.int64)]
    ground = build_ground_set(function, x, h, k, float(lam), sigma=sigma, seed=seed)
    merge = merge is not False
    picked, merged = partitioned_select(
        ground,
        k,
        blocks,
        optimizer=optimizer,
        epsilon=epsilon,
        rng=rng,
        map_fn=map_fn,
        merge=merge,
        memory_budget_bytes=memory_budget_bytes,
    )
    relative, estimated = None, False
    if reference_size > 0:
        if len(blocks) == 1 and ground.graph_kind != "ivf":
            relative = 1.0
        else:
            relative, estimated = _relative_objective(
                ground,
                k,
                float(lam),
                picked,
                blocks,
                ground.graph_cells,
                optimizer=optimizer,
                epsilon=epsilon,
                merge=merge,
                memory_budget_bytes=memory_budget_bytes,
                reference_size=reference_size,
                map_fn=map_fn,
                rng=rng,
            )
    return DiverseResult(
        picked, partitioning, len(blocks), merged, relative, estimated, ground.graph_kind, optimizer
    )


def select_diverse(embeddings: np.ndarray, scores: np.ndarray, k: int, **options: Any) -> np.ndarray:
    """The positions of :func:`solve_diverse`'s pick (same options), without the relative-objective
    measurement."""
    return solve_diverse(embeddings, scores, k, **options, reference_size=0).positions

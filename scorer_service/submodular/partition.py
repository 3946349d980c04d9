"""Partitioned selection for ground sets too large for one kernel (GreeDi-style).

The candidate set is split into blocks -- by a label array (e.g. class) or at random -- each block
gets a budget proportional to its size, and each block is solved independently with its own
function (dense kernel, kNN graph or features built on the block only), so memory is
O(max block^2) for dense facility location and the blocks can run in parallel through an injected
``map_fn`` (a thread pool by default; any map, e.g. over Ray remote calls, fits). Optionally, blocks
over-select and a second greedy round on the union of their picks chooses the final k: the
two-round scheme of GreeDi (Mirzasoleiman, Karbasi, Sarkar & Krause, NeurIPS 2013).

Partitioning by class keeps each block's data contiguous and cache-resident, which is where most
of its speed comes from; it optimizes the sum of per-block objectives rather than the global one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from scorer_service.submodular.functions import FUNCTIONS, Objective
from scorer_service.submodular.optimizers import OPTIMIZERS

MapFn = Callable[[Callable, Iterable], Iterable]


def proportional_budgets(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` over blocks in proportion to ``sizes`` (largest-remainder rounding, Hamilton).

    Sums to exactly k, and no block gets more than its size (``ceil(k * s / total) <= s``).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if not 0 <= k <= total:
        raise ValueError(f"k must be in [0, {total}], got {k}")
    if total == 0:
        return np.zeros_like(sizes)
    exact = sizes * (k / total)
    budgets = np.floor(exact).astype(np.int64)
    short = k - int(budgets.sum())
    order = np.argsort(-(exact - budgets), kind="stable")
    budgets[order[:short]] += 1
    return budgets


def make_blocks(
    m: int, max_block: int, rng: np.random.Generator, labels: np.ndarray | None = None
) -> list[np.ndarray]:
    """Positions ``0..m-1`` grouped into blocks of at most ``max_block``.

    With ``labels``, one block per label value; a label group larger than ``max_block`` is split at
    random into equal parts. Without, a random permutation cut into ``ceil(m / max_block)`` equal parts.
    """
    if max_block < 1:
        raise ValueError(f"max_block must be >= 1, got {max_block}")
    if labels is None:
        groups = [np.arange(m, dtype=np.int64)]
    else:
        order = np.argsort(labels, kind="stable")
        cuts = np.flatnonzero(np.diff(labels[order])) + 1
        groups = np.split(order.astype(np.int64), cuts)
    blocks: list[np.ndarray] = []
    for g in groups:
        if g.shape[0] <= max_block:
            blocks.append(g)
        else:
            blocks.extend(np.array_split(rng.permutation(g), math.ceil(g.shape[0] / max_block)))
    return [b for b in blocks if b.shape[0]]


def build_objective(
    function: str,
    embeddings: np.ndarray,
    modular: np.ndarray,
    k: int,
    lam: float,
    *,
    sigma: float,
    rng: np.random.Generator,
) -> Objective:
    """``F(S) = sum_{i in S} m_i + (lam * k / G(V)) * G(S)`` on one ground set.

    Dividing G by its value on the whole ground set V and multiplying by k puts it on the modular
    term's scale: with ``m`` in [0, 1], each term contributes at most k over a k-subset, i.e. the
    average gain of a selected element is at most 1 in both, so ``lam`` is the relative weight.
    For facility location with unit self-similarity ``G(V) = |V|``.
    """
    try:
        builder = FUNCTIONS[function]
    except KeyError:
        raise ValueError(
            f"unknown function {function!r}; expected one of {', '.join(sorted(FUNCTIONS))}"
        ) from None
    g = builder(embeddings, sigma=sigma, rng=rng)
    full = g.full_value()
    weight = lam * k / full if full > 0 else 0.0
    return Objective(modular, g, weight)


@dataclass(frozen=True)
class BlockProblem:
    """One block's subproblem; plain data so it can be shipped to another process."""

    positions: np.ndarray
    embeddings: np.ndarray
    modular: np.ndarray
    k: int
    function: str
    lam: float
    optimizer: str
    epsilon: float
    sigma: float
    seed: int


def solve_block(block: BlockProblem) -> np.ndarray:
    """Run the optimizer on one block; returns the chosen positions (global), in selection order."""
    if block.k == 0:
        return np.zeros(0, dtype=np.int64)
    if block.k == block.positions.shape[0]:
        return block.positions.copy()
    rng = np.random.default_rng(block.seed)
    f = build_objective(
        block.function, block.embeddings, block.modular, block.k, block.lam, sigma=block.sigma, rng=rng
    )
    local = OPTIMIZERS[block.optimizer](f, block.k, epsilon=block.epsilon, rng=rng)
    return block.positions[local]


def thread_map(fn: Callable, items: Iterable) -> Iterable:
    """Default ``map_fn``: the optimizers and BLAS release the GIL, so threads use every core."""
    items = list(items)
    if len(items) <= 1:
        return map(fn, items)
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


def partitioned_select(
    embeddings: np.ndarray,
    modular: np.ndarray,
    k: int,
    *,
    function: str,
    lam: float,
    optimizer: str,
    epsilon: float,
    sigma: float,
    max_block: int,
    rng: np.random.Generator,
    labels: np.ndarray | None = None,
    map_fn: MapFn | None = None,
    merge: bool = False,
    oversample: float = 2.0,
) -> np.ndarray:
    """Select ``k`` positions by solving blocks independently (see the module docstring).

    ``modular`` must already be non-negative; each block gets ``k_b`` proportional to its size
    (:func:`proportional_budgets`) and its own objective from :func:`build_objective`. With
    ``merge``, blocks pick ``ceil(oversample * k_b)`` instead and a second round selects k from
    their union (itself split at random if the union exceeds ``max_block``).
    """
    m = modular.shape[0]
    blocks = make_blocks(m, max_block, rng, labels)
    sizes = np.array([b.shape[0] for b in blocks], dtype=np.int64)
    budgets = proportional_budgets(sizes, k)
    if merge:
        budgets = np.minimum(sizes, np.ceil(budgets * oversample).astype(np.int64))
    seeds = rng.integers(0, 2**63, size=len(blocks))
    problems = [
        BlockProblem(
            positions=b,
            embeddings=np.ascontiguousarray(embeddings[b], dtype=np.float32),
            modular=modular[b],
            k=int(kb),
            function=function,
            lam=lam,
            optimizer=optimizer,
            epsilon=epsilon,
            sigma=sigma,
            seed=int(seed),
        )
        for b, kb, seed in zip(blocks, budgets, seeds, strict=True)
        if kb > 0
    ]
    # Blocks run side by side on every core; multi-threaded BLAS on top of that only adds
    # synchronization (6x slower per small sgemm when oversubscribed).
    with threadpool_limits(1, user_api="blas"):
        results = list((map_fn or thread_map)(solve_block, problems))
    picked = np.concatenate([np.zeros(0, dtype=np.int64), *results])
    if not merge or picked.shape[0] == k:
        return picked
    union = np.sort(picked)
    second = partitioned_select(
        embeddings[union],
        modular[union],
        k,
        function=function,
        lam=lam,
        optimizer=optimizer,
        epsilon=epsilon,
        sigma=sigma,
        max_block=max_block,
        rng=rng,
        map_fn=map_fn,
    )
    return union[second]

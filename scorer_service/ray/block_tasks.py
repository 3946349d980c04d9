"""Diversity blocks as Ray tasks: the store actor's ``map_fn`` for partitioned selection.

At ImageNet size the diversity term is solved in blocks (``submodular.partition``). Inside the
store actor they run on a thread pool over the cores of the store's node. When the cluster has
more idle CPUs than that node has cores, some of them are elsewhere, and :func:`ray_block_map`
ships the blocks to them as Ray tasks instead. At a round boundary the trainers usually hold
most CPU slots, so it looks first: tasks asking for a CPU would otherwise queue behind the
trainers, which are themselves waiting for this selection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import ray

from scorer_service.submodular.partition import thread_map


@ray.remote(num_cpus=1)
def _solve_chunk(fn: Callable, items: list) -> list:
    return [fn(item) for item in items]


def balanced_chunks(costs: Sequence[float], parts: int) -> list[list[int]]:
    """Indices of ``costs`` split into ``parts`` groups of near-equal total cost.

    Longest processing time first: each item, largest first, goes to the least loaded group,
    which is within 4/3 of the best possible makespan (Graham 1969).
    """
    parts = max(1, min(parts, len(costs)))
    loads = np.zeros(parts)
    groups: list[list[int]] = [[] for _ in range(parts)]
    for i in np.argsort(-np.asarray(costs, dtype=np.float64), kind="stable"):
        g = int(np.argmin(loads))
        groups[g].append(int(i))
        loads[g] += costs[i]
    return [g for g in groups if g]


def free_cpus() -> int:
    """CPUs that no task or actor holds right now, over the whole cluster."""
    return int(ray.available_resources().get("CPU", 0))


def ray_block_map(fn: Callable, items: Iterable, *, min_free_cpus: int | None = None) -> list:
    """``[fn(x) for x in items]``, one Ray task per group of blocks on the cluster's idle CPUs.

    Tasks are used when at least ``min_free_cpus`` CPUs are free (default: one more than this
    node's cores, which the thread pool already has), Ray is up and there are two blocks or
    more; otherwise the thread pool runs them. Blocks are grouped into one task per free CPU
    (costed by block size, ``len(item.positions)``), which keeps the per-task overhead out of
    selections with thousands of small blocks. Results are the thread pool's, in order: every
    block carries its own seed.
    """
    items = list(items)
    need = (os.cpu_count() or 1) + 1 if min_free_cpus is None else min_free_cpus
    cpus = free_cpus() if ray.is_initialized() else 0
    if len(items) < 2 or cpus < max(need, 2):
        return list(thread_map(fn, items))
    chunks = balanced_chunks([len(item.positions) for item in items], cpus)
    refs = [_solve_chunk.remote(fn, [items[i] for i in chunk]) for chunk in chunks]
    out: list = [None] * len(items)
    for chunk, results in zip(chunks, ray.get(refs), strict=True):
        for i, r in zip(chunk, results, strict=True):
            out[i] = r
    return out

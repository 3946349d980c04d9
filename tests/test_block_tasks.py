"""Diversity blocks as Ray tasks from the store actor, and the thread-pool fallback."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

import numpy as np
import ray

from scorer_service.ray import block_tasks
from scorer_service.ray.actor import create_store
from scorer_service.ray.block_tasks import balanced_chunks, ray_block_map
from scorer_service.store import HardnessStore
from scorer_service.submodular import select_diverse
from tests.helpers import batch, diversity_config


@dataclass
class Item:
    positions: np.ndarray


def _pid(_: Item) -> int:
    return os.getpid()


def test_balanced_chunks_cover_every_item_once_within_graham_bound():
    costs = [7, 3, 3, 2, 2, 2, 9, 1, 5, 4]
    for parts in (1, 2, 3, 4, 20):
        chunks = balanced_chunks(costs, parts)
        assert sorted(i for c in chunks for i in c) == list(range(len(costs)))
        assert len(chunks) == min(parts, len(costs))
        loads = [sum(costs[i] for i in c) for c in chunks]
        best = max(max(costs), sum(costs) / len(chunks))  # lower bound on the optimal makespan
        assert max(loads) <= 4 / 3 * best + 1e-9
    assert balanced_chunks([5, 5, 5, 5], 2) == [[0, 2], [1, 3]]


def test_blocks_run_as_ray_tasks_when_cpus_are_free_else_on_threads(ray_session):
    items = [Item(np.arange(s)) for s in (50, 40, 30, 20, 10)]
    assert block_tasks.free_cpus() >= 2, "the test session's CPUs are held"
    pids = ray_block_map(_pid, items, min_free_cpus=2)
    assert len(pids) == 5 and os.getpid() not in pids
    # By default tasks need more free CPUs than this node has cores: here, threads.
    assert set(ray_block_map(_pid, items)) == {os.getpid()}
    assert set(ray_block_map(_pid, items, min_free_cpus=10**6)) == {os.getpid()}


def test_partitioned_selection_through_ray_tasks_equals_the_thread_pool(ray_session):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6000, 8)).astype(np.float32)
    scores = rng.random(6000)
    labels = rng.integers(0, 7, 6000)
    for function in ("fl", "feature"):
        kw = {"function": function, "partitions": labels, "max_block": 1000}
        threads = select_diverse(emb, scores, 1500, rng=np.random.default_rng(1), **kw)
        on_tasks = partial(ray_block_map, min_free_cpus=2)
        tasks = select_diverse(emb, scores, 1500, rng=np.random.default_rng(1), map_fn=on_tasks, **kw)
        np.testing.assert_array_equal(tasks, threads)


def test_store_actor_selects_what_a_local_store_selects(ray_session):
    # 15k candidates: dense facility location is solved in k-means blocks and a merge round.
    n = 30_000
    cfg = diversity_config(n, run="block-tasks", embedding_dim=8)
    rng = np.random.default_rng(2)
    ingest = batch(np.arange(n), rng.random(n) * 3, rng.random(n) < 0.5, 0, 0.1)
    ingest["embedding"] = rng.normal(size=(n, 8)).astype(np.float16)
    local = HardnessStore(cfg)
    actor = create_store(cfg)
    try:
        local.subset(0, 0, 1)
        local.ingest(ingest)
        want = local.subset(1, 0, 1)
        ray.get(actor.subset.remote(0, 0, 1))
        ray.get(actor.ingest.remote(ingest))
        got = ray.get(actor.subset.remote(1, 0, 1))
        assert len(want) == round(0.4 * 0.5 * n)
        np.testing.assert_array_equal(np.sort(got), np.sort(want))
    finally:
        ray.kill(actor)

"""Diversity selection: partitioning into blocks and budgets, and select_diverse / solve_diverse."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from scorer_service.submodular import (
    FacilityLocation,
    FeatureBased,
    build_objective,
    kmeans_cells,
    make_blocks,
    mean_pairwise_distance,
    nonnegative_features,
    proportional_budgets,
    rescale_scores,
    select_diverse,
    solve_diverse,
)
from tests.submodular_data import clustered, clustered_with_labels, planted_clusters


def test_partition_budgets_and_blocks():
    sizes = np.array([5, 17, 1, 0, 77])
    for k in (0, 1, 13, 50, 100):
        b = proportional_budgets(sizes, k)
        assert b.sum() == k and (b <= sizes).all() and (b >= 0).all()
        assert np.all(np.abs(b - k * sizes / sizes.sum()) < 1)
    labels = np.array([2, 0, 2, 1, 0, 2, 2, 2])
    # Label 2's five members sit in two places: the split of that group follows them.
    emb = np.array([[0, 0], [5, 5], [0, 1], [9, 9], [5, 5], [0, 0], [7, 7], [7, 8]], dtype=np.float32)
    blocks = make_blocks(emb, 3, 0, labels)
    assert sorted(np.concatenate(blocks).tolist()) == list(range(8))
    assert all(len(np.unique(labels[b])) == 1 and len(b) <= 3 for b in blocks)
    assert sorted(map(sorted, (b.tolist() for b in blocks))) == [[0, 2, 5], [1, 4], [3], [6, 7]]


def test_blocks_without_labels_are_kmeans_cells_not_random():
    rng = np.random.default_rng(21)
    x, cluster = clustered_with_labels(rng, 4000, d=8, centres=8, spread=0.2)
    for cap in (600, 1000, 4000):
        blocks = kmeans_cells(x, cap, seed=3)
        assert sorted(np.concatenate(blocks).tolist()) == list(range(4000))
        assert max(len(b) for b in blocks) <= cap
        # Fewer cells than clusters pair some up, but a cell never spreads over many of the eight
        # well-separated clusters, as a random block would.
        assert max(len(np.unique(cluster[b])) for b in blocks) <= (2 if cap < 4000 else 8)
        np.testing.assert_array_equal(np.concatenate(blocks), np.concatenate(kmeans_cells(x, cap, seed=3)))
    # Points k-means cannot separate are cut into equal runs.
    same = kmeans_cells(np.zeros((10, 3), dtype=np.float32), 4, seed=0)
    assert [len(b) for b in same] == [4, 3, 3]


def test_select_diverse_returns_k_unique_positions():
    rng = np.random.default_rng(6)
    m = 500
    emb = clustered(rng, m, d=16).astype(np.float16)
    scores = rng.normal(size=m) * 500 + 1000
    labels = rng.integers(0, 5, m)
    for function in ("fl", "fl-knn", "feature"):
        for optimizer in ("stochastic", "lazy", "naive"):
            for parts in (None, labels):
                for k in (0, 1, 137, m):
                    out = select_diverse(
                        emb, scores, k, function=function, optimizer=optimizer, partitions=parts, rng=rng
                    )
                    assert out.dtype == np.int64 and out.shape == (k,)
                    assert len(np.unique(out)) == k and (out >= 0).all() and (out < m).all()
    # Without the merge round, per-class shares are proportional to class sizes (the merge round,
    # on by default, moves budget to the classes where the gains are).
    out = select_diverse(emb, scores, 100, partitions=labels, rng=rng, merge=False)
    share = np.bincount(labels[out], minlength=5)
    np.testing.assert_array_equal(share, proportional_budgets(np.bincount(labels, minlength=5), 100))


def test_select_diverse_balances_hardness_and_diversity():
    rng = np.random.default_rng(8)
    emb, cluster = clustered_with_labels(rng, 400, d=8, centres=8, spread=0.2)
    scores = rng.random(400) * 1000 + 10
    topk = set(np.argsort(-scores)[:40].tolist())
    assert set(select_diverse(emb, scores, 40, lam=0.0, optimizer="lazy").tolist()) == topk
    # Equal hardness: facility location alone must cover every cluster ...
    flat = np.full(400, 7.0)
    for function in ("fl", "fl-knn"):
        picked = select_diverse(emb, flat, 40, function=function, rng=np.random.default_rng(0))
        assert len(np.unique(cluster[picked])) == 8, function
    # ... and the feature-based pick covers more feature mass than random picks do.
    g = FeatureBased(nonnegative_features(emb))
    picked = select_diverse(emb, flat, 40, function="feature", rng=np.random.default_rng(0))
    random_best = max(g.evaluate(rng.choice(400, 40, replace=False)) for _ in range(20))
    assert g.evaluate(picked) > random_best


def test_select_diverse_partitions_automatically_and_is_deterministic():
    rng = np.random.default_rng(9)
    m = 9000  # blocks of at most 1500: k-means cells, never a 9000^2 kernel
    emb = rng.normal(size=(m, 8)).astype(np.float32)
    scores = rng.random(m)
    a = select_diverse(emb, scores, 900, rng=np.random.default_rng(1), max_block=1500)
    b = select_diverse(emb, scores, 900, rng=np.random.default_rng(1), max_block=1500, map_fn=map)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 900
    c = select_diverse(emb, scores, 900, rng=np.random.default_rng(1), max_block=1500, merge=True)
    assert len(np.unique(c)) == 900


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((5, 2)), np.zeros(5), 6), {}, "k must be in"),
        ((np.zeros((5, 2)), np.zeros(5), -1), {}, "k must be in"),
        ((np.zeros((5, 2)), np.array([0, 1, np.nan, 2, 3]), 2), {}, "NaN"),
        ((np.full((5, 2), np.inf), np.zeros(5), 2), {}, "embeddings contain NaN"),
        ((np.zeros((5, 2)), np.zeros(4), 2), {}, "5 rows but scores has length 4"),
        ((np.zeros(5), np.zeros(5), 2), {}, "embeddings must be a 2-d"),
        ((np.zeros((5, 2)), np.zeros((5, 1)), 2), {}, "scores must be a 1-d"),
        ((np.zeros((5, 2)), np.zeros(5), 2.5), {}, "k must be an integer"),
        ((np.zeros((5, 2)), np.zeros(5), 2), {"function": "nope"}, "unknown function"),
        ((np.zeros((5, 2)), np.zeros(5), 2), {"optimizer": "nope"}, "unknown optimizer"),
        ((np.zeros((5, 2)), np.zeros(5), 2), {"epsilon": 1.5}, "epsilon"),
        ((np.zeros((5, 2)), np.zeros(5), 2), {"lam": -1.0}, "lam"),
        ((np.zeros((5, 2)), np.zeros(5), 2), {"partitions": np.zeros(4, dtype=int)}, "partitions"),
    ],
)
def test_select_diverse_rejects_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_diverse(*args, **kwargs)


def test_dense_kernel_is_capped():
    with pytest.raises(ValueError, match="cap"):
        FacilityLocation(np.zeros((2000, 2), dtype=np.float32), max_kernel_bytes=2**20)


@pytest.mark.parametrize("function", ["fl", "fl-knn", "feature"])
def test_partitioned_selection_keeps_98_percent_of_the_global_solve(function):
    x, dih = planted_clusters(31)
    m = x.shape[0]
    for scores in (dih, np.ones(m)):  # hardness + diversity, and diversity alone
        for k in (300, 1500):
            # solve_diverse's sigma is the first draw of its rng: the same objective here.
            sigma = mean_pairwise_distance(x, np.random.default_rng(5))
            f = build_objective(function, x, rescale_scores(scores), k, 1.0, sigma=sigma, rng=None)
            kw = {"function": function, "optimizer": "lazy"}
            # A budget that holds the 6000^2 kernel: one global solve.
            whole = solve_diverse(x, scores, k, rng=np.random.default_rng(5), memory_budget_bytes=2**30, **kw)
            assert (whole.partitioning, whole.blocks, whole.merged) == ("global", 1, False)
            assert whole.relative_objective == 1.0 and not whole.relative_objective_estimated
            # Blocks of at most 800; the budget still holds the reference solve's 6000^2 kernel.
            parts = solve_diverse(
                x, scores, k, rng=np.random.default_rng(5), max_block=800, memory_budget_bytes=2**28, **kw
            )
            assert parts.partitioning == "kmeans" and parts.blocks >= 8 and parts.merged
            ratio = f.evaluate(parts.positions) / f.evaluate(whole.positions)
            assert ratio >= 0.98, (function, k, ratio)
            # m <= reference_size: the reported ratio is the exact one, from the same global solve.
            assert parts.relative_objective == pytest.approx(ratio, rel=1e-9)
            assert not parts.relative_objective_estimated


def test_random_blocks_would_fail_the_98_percent_bar():
    # What the test above guards against: blocks at random (here as labels, no merge round) cut
    # the kNN graph, and the pick falls far below the global solve.
    x, _ = planted_clusters(31)
    m, k = x.shape[0], 300
    flat = np.ones(m)
    random_labels = np.random.default_rng(1).integers(0, 8, m)
    kw = {"function": "fl-knn", "optimizer": "lazy", "rng": np.random.default_rng(5)}
    cut = solve_diverse(x, flat, k, partitions=random_labels, merge=False, **kw)
    assert cut.partitioning == "label" and cut.blocks == 8 and not cut.merged
    assert cut.relative_objective < 0.9


def test_solve_diverse_reports_an_estimate_above_the_reference_size():
    x, dih = planted_clusters(32, m=6000)
    kw = {"function": "fl-knn", "optimizer": "lazy", "max_block": 800}
    est = solve_diverse(x, dih, 600, rng=np.random.default_rng(2), reference_size=2000, **kw)
    assert est.relative_objective_estimated and 0.95 <= est.relative_objective <= 1.05
    off = solve_diverse(x, dih, 600, rng=np.random.default_rng(2), reference_size=0, **kw)
    assert off.relative_objective is None and not off.relative_objective_estimated
    # The measurement runs after the pick: the positions do not depend on it.
    np.testing.assert_array_equal(est.positions, off.positions)
    np.testing.assert_array_equal(
        select_diverse(x, dih, 600, rng=np.random.default_rng(2), **kw), off.positions
    )
    # Labels given: blocks by label.
    labels = np.arange(6000) % 3
    by_label = solve_diverse(x, dih, 600, function="feature", partitions=labels, rng=np.random.default_rng(0))
    assert (by_label.partitioning, by_label.blocks, by_label.merged) == ("label", 3, True)
    assert by_label.graph is None and est.graph == "exact"


def test_dense_blocks_follow_the_memory_budget():
    x, dih = planted_clusters(33, m=3000)
    # 4 MiB for one kernel per core: blocks of at most sqrt(4 MiB / (4 B * cores)) candidates; the
    # reference solve fits a 1024^2 kernel, under m: its ratio is an estimate.
    budget = 4 * 2**20
    cap = math.isqrt(budget // (4 * (os.cpu_count() or 1)))
    res = solve_diverse(x, dih, 300, memory_budget_bytes=budget, rng=np.random.default_rng(0))
    assert res.partitioning == "kmeans" and res.blocks >= math.ceil(3000 / cap)
    assert res.merged and res.relative_objective >= 0.98 and res.relative_objective_estimated
    # Too little memory for the merge round to score the union against 1024 ground elements.
    tight = solve_diverse(x, dih, 300, memory_budget_bytes=2**20, rng=np.random.default_rng(0))
    assert tight.blocks > res.blocks and not tight.merged
    roomy = solve_diverse(x, dih, 300, memory_budget_bytes=2**28, rng=np.random.default_rng(0))
    assert roomy.partitioning == "global" and roomy.relative_objective == 1.0

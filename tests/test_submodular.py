"""Submodular diversity selection: functions, optimizers, partitioning and select_diverse."""

from __future__ import annotations

import itertools
import math
import os

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from sklearn.neighbors import NearestNeighbors

from scorer_service.submodular import (
    FacilityLocation,
    FeatureBased,
    KNNFacilityLocation,
    Modular,
    Objective,
    build_objective,
    kmeans_cells,
    knn_graph,
    lazy_greedy,
    lazy_stochastic_greedy,
    make_blocks,
    mean_pairwise_distance,
    naive_greedy,
    neighbour_graph,
    nonnegative_features,
    proportional_budgets,
    rescale_scores,
    select_diverse,
    solve_diverse,
    stochastic_greedy,
)
from scorer_service.submodular.functions import dense_gains4, gaussian_kernel
from scorer_service.submodular.neighbours import graph_rows, induced_subgraph


def clustered_with_labels(
    rng: np.random.Generator, n: int, d: int = 6, centres: int = 4, spread: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    c = rng.normal(size=(centres, d)) * 3
    label = rng.integers(0, centres, n)
    return (c[label] + spread * rng.normal(size=(n, d))).astype(np.float32), label


def clustered(
    rng: np.random.Generator, n: int, d: int = 6, centres: int = 4, spread: float = 0.3
) -> np.ndarray:
    return clustered_with_labels(rng, n, d, centres, spread)[0]


def make_function(name: str, x: np.ndarray):
    if name == "fl":
        return FacilityLocation(x, rng=np.random.default_rng(0))
    if name == "fl-knn":
        return KNNFacilityLocation(x, n_neighbors=3, rng=np.random.default_rng(0))
    if name == "feature":
        return FeatureBased(nonnegative_features(x))
    if name == "feature-log":
        return FeatureBased(nonnegative_features(x), concave="log")
    return Modular(x.shape[0])


ALL = ["fl", "fl-knn", "feature", "feature-log", "modular"]


def brute_force_opt(f: Objective, k: int) -> float:
    return max(f.evaluate(np.array(s)) for s in itertools.combinations(range(f.n), k))


@pytest.mark.parametrize("name", ALL)
def test_memoized_gain_equals_recomputed_difference(name):
    rng = np.random.default_rng(1)
    x = clustered(rng, 40)
    f = Objective(rng.random(40) * 3, make_function(name, x), weight=0.7)
    # The sqrt feature gain is float32 arithmetic (a few ulp per feature); the rest is float64.
    tol = 2e-6 if name == "feature" else 1e-9
    for _ in range(4):
        f.reset()
        s = rng.choice(40, size=int(rng.integers(0, 12)), replace=False)
        for e in s:
            f.add(e)
        rest = np.setdiff1d(np.arange(40), s)
        e = rng.choice(rest, size=8, replace=False)
        got = f.gains(e)
        base = f.evaluate(s)
        want = np.array([f.evaluate(np.append(s, x_)) - base for x_ in e])
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        # The diversity function on its own: G's memoized gains against G from scratch.
        g = f.diversity
        gb = g.evaluate(s)
        want_g = [g.evaluate(np.append(s, x_)) - gb for x_ in e]
        np.testing.assert_allclose(g.gains(e), want_g, rtol=tol, atol=tol)
        if name == "fl":  # stochastic greedy's four-rows-at-once dense gains
            out = np.empty(4)
            for quad in (e[:4], e[4:]):
                dense_gains4(g.kernel, g.memo, np.ascontiguousarray(quad), out)
                np.testing.assert_allclose(
                    out, [want_g[list(e).index(q)] for q in quad], rtol=1e-9, atol=1e-9
                )


def test_feature_gain_stays_accurate_after_many_additions():
    # The float32 sums in the memo are rounded from float64 sums, so they do not drift with |S|.
    rng = np.random.default_rng(4)
    g = FeatureBased(nonnegative_features(rng.normal(size=(3000, 16)).astype(np.float32)))
    s = rng.permutation(3000)[:2500]
    for e in s:
        g.add(e)
    rest = np.setdiff1d(np.arange(3000), s)
    base = g.evaluate(s)
    want = [g.evaluate(np.append(s, e)) - base for e in rest]
    np.testing.assert_allclose(g.gains(rest), want, rtol=2e-6)


def test_function_values_from_definitions():
    rng = np.random.default_rng(2)
    x = clustered(rng, 30)
    sigma = float(pdist(x.astype(np.float64)).mean())
    fl = FacilityLocation(x, sigma=sigma)
    s = np.array([3, 17, 22])
    d2 = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
    w = np.exp(-d2 / (2 * sigma**2))
    assert fl.evaluate(s) == pytest.approx(w[s].max(axis=0).sum(), rel=1e-5)
    assert fl.full_value() == 30.0
    feats = nonnegative_features(x)
    assert feats.shape == (30, 12) and (feats >= 0).all()
    assert FeatureBased(feats).evaluate(s) == pytest.approx(np.sqrt(feats[s].astype(np.float64).sum(0)).sum())
    assert mean_pairwise_distance(x, rng) == pytest.approx(sigma, rel=1e-6)


def test_knn_graph_is_exact_symmetric_and_weighted():
    rng = np.random.default_rng(3)
    x = clustered(rng, 300, d=8)
    indptr, indices, weights = knn_graph(x, 5, 2.0, tile=64)
    _, nbrs = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x)
    for i in range(300):
        row = set(indices[indptr[i] : indptr[i + 1]].tolist())
        assert set(nbrs[i, 1:].tolist()) | {i} <= row
    dense = np.zeros((300, 300))
    rows = np.repeat(np.arange(300), np.diff(indptr))
    dense[rows, indices] = weights
    np.testing.assert_array_equal(dense > 0, (dense > 0).T)
    np.testing.assert_allclose(np.diag(dense), 1.0)
    d2 = ((x[rows] - x[indices]) ** 2).sum(1)
    np.testing.assert_allclose(weights, np.exp(-d2 / 8.0), atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_lazy_greedy_returns_exactly_naive_greedy(name):
    for seed in range(3):
        rng = np.random.default_rng(10 + seed)
        x = clustered(rng, 60)
        f = Objective(rng.random(60), make_function(name, x), weight=float(rng.uniform(0.05, 2)))
        for k in (1, 7, 30, 60):
            np.testing.assert_array_equal(lazy_greedy(f, k), naive_greedy(f, k))


def test_ties_go_to_the_lowest_index():
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 12 rows, 3 distinct, each 4 times
    f = Objective(np.ones(12), FeatureBased(x), weight=1.0)
    for opt in (naive_greedy, lazy_greedy):
        np.testing.assert_array_equal(opt(f, 5), [0, 4, 8, 1, 5])
    flat = Objective(np.full(9, 0.5))
    np.testing.assert_array_equal(lazy_greedy(flat, 4), [0, 1, 2, 3])


@pytest.mark.parametrize("optimizer", [stochastic_greedy, lazy_stochastic_greedy])
@pytest.mark.parametrize("name", ALL)
def test_stochastic_greedy_meets_its_guarantee_against_brute_force(name, optimizer):
    eps = 0.1
    for inst in range(3):
        rng = np.random.default_rng(100 + inst)
        x = clustered(rng, 12, d=4)
        # A few much harder samples: a sampler that ignores gains falls far below the bound.
        hard = np.zeros(12)
        hard[rng.choice(12, 4, replace=False)] = 5.0
        f = Objective(hard + rng.random(12) * 0.1, make_function(name, x), weight=1.0)
        k = 4
        opt = brute_force_opt(f, k)
        values = [f.evaluate(optimizer(f, k, epsilon=eps, rng=np.random.default_rng(s))) for s in range(30)]
        assert np.mean(values) >= (1 - 1 / math.e - eps) * opt
        assert f.evaluate(naive_greedy(f, k)) >= (1 - 1 / math.e) * opt
        assert max(values) <= opt + 1e-9


@pytest.mark.parametrize("name", ALL)
def test_lazy_stochastic_greedy_takes_lazy_greedys_pick_when_the_heap_decides(name):
    # A modular term far above any diversity gain: the heap's top is fresh after one evaluation,
    # so every step is lazy greedy's, where a uniform sample of s = 18 misses the best element.
    rng = np.random.default_rng(9)
    x = clustered(rng, 300, d=6)
    f = Objective(np.arange(300, dtype=np.float64) * 10.0, make_function(name, x), weight=1.0)
    exact = lazy_greedy(f, 40)
    np.testing.assert_array_equal(lazy_stochastic_greedy(f, 40, rng=np.random.default_rng(1)), exact)
    assert not np.array_equal(stochastic_greedy(f, 40, rng=np.random.default_rng(1)), exact)


def test_lazy_stochastic_greedy_finds_the_hard_samples_a_uniform_sample_misses():
    rng = np.random.default_rng(21)
    x = clustered(rng, 20_000, d=8, centres=20)
    m = rng.gamma(2.0, 100.0, size=20_000)  # DIH-like: a few samples worth far more than the rest
    g = FeatureBased(nonnegative_features(x))
    f = Objective(m / m.max(), g, weight=200 / g.full_value())
    best = f.evaluate(lazy_greedy(f, 200))
    probed = lazy_stochastic_greedy(f, 200, rng=np.random.default_rng(2))
    plain = stochastic_greedy(f, 200, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(probed, lazy_stochastic_greedy(f, 200, rng=np.random.default_rng(2)))
    assert len(np.unique(probed)) == 200
    assert f.evaluate(probed) >= 0.995 * best
    assert f.evaluate(probed) > f.evaluate(plain)


def test_stochastic_greedy_is_seeded_and_close_to_lazy():
    rng = np.random.default_rng(5)
    x = clustered(rng, 2000, d=8, centres=20)
    f = Objective(rng.random(2000), FacilityLocation(x, rng=rng), weight=0.05)
    a = stochastic_greedy(f, 200, rng=np.random.default_rng(7))
    b = stochastic_greedy(f, 200, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 200
    assert f.evaluate(a) >= 0.98 * f.evaluate(lazy_greedy(f, 200))


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


def planted_clusters(
    seed: int, m: int = 6000, d: int = 8, centres: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    # Clusters of very different spread (0.1 to 1.0 around centres ~3 apart) and DIH-like scores.
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d)) * 3
    spread = np.geomspace(0.1, 1.0, centres)
    label = rng.integers(0, centres, m)
    x = (c[label] + spread[label, None] * rng.normal(size=(m, d))).astype(np.float32)
    return x, 10 + rng.gamma(2.0, 100.0, m)


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


def test_ivf_graph_is_exact_within_its_cells():
    x, _ = planted_clusters(34, m=3000)
    graph, cells = neighbour_graph(x, 5, 2.0, seed=1, exact_max=1000, cell_size=700)
    assert cells is not None and max(len(c) for c in cells) <= 700
    assert sorted(np.concatenate(cells).tolist()) == list(range(3000))
    indptr, indices, _ = graph
    cell_of = np.empty(3000, dtype=np.int64)
    for i, c in enumerate(cells):
        cell_of[c] = i
    rows = np.repeat(np.arange(3000), np.diff(indptr))
    np.testing.assert_array_equal(cell_of[rows], cell_of[indices])  # no edge leaves its cell
    for c in cells[:3]:
        _, nbrs = NearestNeighbors(n_neighbors=6).fit(x[c]).kneighbors(x[c])
        for i, e in enumerate(c):
            assert set(c[nbrs[i, 1:]].tolist()) <= set(indices[indptr[e] : indptr[e + 1]].tolist())
    exact, none = neighbour_graph(x, 5, 2.0, seed=1)
    assert none is None
    np.testing.assert_array_equal(exact[0], knn_graph(x, 5, 2.0)[0])


def test_subgraphs_and_rectangular_functions_match_their_definitions():
    rng = np.random.default_rng(35)
    x = clustered(rng, 200, d=4)
    graph = knn_graph(x, 4, 1.5)
    dense = np.zeros((200, 200))
    dense[np.repeat(np.arange(200), np.diff(graph[0])), graph[1]] = graph[2]
    nodes = np.sort(rng.choice(200, 60, replace=False))
    ip, ix, w = induced_subgraph(graph, nodes)
    sub = np.zeros((60, 60))
    sub[np.repeat(np.arange(60), np.diff(ip)), ix] = w
    np.testing.assert_array_equal(sub, dense[np.ix_(nodes, nodes)])
    rows = KNNFacilityLocation(graph=graph_rows(graph, nodes), n_ground=200)
    s = np.array([3, 17, 40])
    assert rows.evaluate(s) == pytest.approx(dense[nodes[s]].max(axis=0).sum(), rel=1e-6)
    want = [rows.evaluate(np.append(s, e)) - rows.evaluate(s) for e in (0, 5, 59)]
    for e in s:
        rows.add(e)
    np.testing.assert_allclose(rows.gains(np.array([0, 5, 59])), want, rtol=1e-6)
    # Dense facility location on a candidates x ground-set kernel.
    kernel = gaussian_kernel(x[nodes], 1.5, x)
    np.testing.assert_allclose(kernel, np.exp(-((x[nodes, None] - x[None]) ** 2).sum(-1) / 4.5), atol=1e-5)
    fl = FacilityLocation(kernel=kernel)
    assert (fl.n, fl.memo_size) == (60, 200)
    want = [fl.evaluate(np.append(s, e)) - fl.evaluate(s) for e in (0, 5, 59)]
    for e in s:
        fl.add(e)
    np.testing.assert_allclose(fl.gains(np.array([0, 5, 59])), want, rtol=1e-6)


@pytest.mark.parametrize("concave", ["sqrt", "log"])
def test_feature_baseline_is_covered_mass(concave):
    rng = np.random.default_rng(36)
    feats = nonnegative_features(clustered(rng, 50, d=4))
    base = feats[:20].sum(axis=0, dtype=np.float64)
    g = FeatureBased(feats[20:], concave=concave, baseline=base)
    whole = FeatureBased(feats, concave=concave)
    s = np.array([1, 7, 12])
    # G_b(S) = G(S + the baseline's elements) - G(the baseline's elements).
    assert g.evaluate(s) == pytest.approx(
        whole.evaluate(np.r_[np.arange(20), s + 20]) - whole.evaluate(np.arange(20))
    )
    want = [g.evaluate(np.append(s, e)) - g.evaluate(s) for e in (0, 3, 29)]
    for e in s:
        g.add(e)
    np.testing.assert_allclose(g.gains(np.array([0, 3, 29])), want, rtol=2e-6)
    with pytest.raises(ValueError, match="baseline"):
        FeatureBased(feats, baseline=-base)


def test_auto_runs_lazy_then_lazy_stochastic_then_stochastic_greedy_as_candidates_grow(monkeypatch):
    import scorer_service.submodular.optimizers as optimizers

    rng = np.random.default_rng(12)
    emb = clustered(rng, 3000, d=16).astype(np.float16)
    scores = rng.random(3000) * 1000
    solve = lambda **kw: solve_diverse(emb, scores, 60, function="fl-knn", rng=np.random.default_rng(1), **kw)  # noqa: E731
    cases = ((3000, 3000, "lazy"), (2999, 3000, "lazy-stochastic"), (2000, 2999, "stochastic"))
    for lazy_max, probe_max, want in cases:
        monkeypatch.setattr(optimizers, "AUTO_LAZY_MAX", lazy_max)
        monkeypatch.setattr(optimizers, "AUTO_PROBE_MAX", probe_max)
        auto = solve()
        assert auto.optimizer == want
        np.testing.assert_array_equal(auto.positions, solve(optimizer=want).positions)
    assert optimizers.choose_optimizer("stochastic", 10) == "stochastic"

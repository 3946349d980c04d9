"""Submodular functions: memoized gains, values from their definitions, kNN and IVF graphs, subgraphs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from sklearn.neighbors import NearestNeighbors

from scorer_service.submodular import (
    FacilityLocation,
    FeatureBased,
    KNNFacilityLocation,
    Objective,
    knn_graph,
    mean_pairwise_distance,
    neighbour_graph,
    nonnegative_features,
)
from scorer_service.submodular.functions import dense_gains4, gaussian_kernel
from scorer_service.submodular.neighbours import graph_rows, induced_subgraph
from tests.submodular_data import ALL, clustered, make_function, planted_clusters


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

"""Submodular optimizers: lazy, stochastic and lazy-stochastic greedy against naive greedy and brute
force, and the automatic choice between them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorer_service.submodular import (
    FacilityLocation,
    FeatureBased,
    Objective,
    lazy_greedy,
    lazy_stochastic_greedy,
    naive_greedy,
    nonnegative_features,
    solve_diverse,
    stochastic_greedy,
)
from tests.submodular_data import ALL, brute_force_opt, clustered, make_function


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

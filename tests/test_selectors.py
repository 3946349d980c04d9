"""Selectors on known inputs: exact picks, empirical frequencies against probabilities, Thompson updates."""

import numpy as np
import pytest

from scorer_service.config import StoreConfig
from scorer_service.core.counter_rng import gumbel_keys
from scorer_service.core.ranking import top_k
from scorer_service.core.state import SampleState
from scorer_service.selection import KeyContext, get_selector
from scorer_service.selection.selectors import exp_probabilities
from scorer_service.store import HardnessStore
from tests.helpers import batch


def ctx(dih, seed=0, cycle=1, **params) -> KeyContext:
    s = SampleState(len(dih))
    s.dih[:] = dih
    return KeyContext(s, 0, len(dih), seed, 0, cycle, params)


def test_greedy_picks_exactly_the_top_k():
    rng = np.random.default_rng(0)
    dih = rng.permutation(1000).astype(float)
    sel = get_selector("dihcl-greedy")(ctx(dih), 37)
    assert set(sel.ids.tolist()) == set(np.argsort(-dih)[:37].tolist())
    assert sel.ids.tolist() == np.argsort(-dih)[:37].tolist()  # hardest first
    assert sel.importance is None


def test_top_k_ties_and_bounds():
    assert top_k(np.array([1.0, 3.0, 3.0, 2.0]), 2).tolist() == [1, 2]
    assert top_k(np.array([1.0, 3.0, 2.0]), 3, largest=False).tolist() == [0, 2, 1]
    with pytest.raises(ValueError):
        top_k(np.ones(3), 4)


def _frequencies(selector: str, dih: np.ndarray, draws: int, **params) -> np.ndarray:
    counts = np.zeros(len(dih))
    fn = get_selector(selector)
    for seed in range(draws):
        counts[fn(ctx(dih, seed=seed, **params), 1).ids] += 1
    return counts / draws


def test_rand_frequencies_match_p_proportional_to_r():
    dih = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 10.0])
    freq = _frequencies("dihcl-rand", dih, 6000)
    p = dih / dih.sum()
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / 6000) + 1e-9), (freq, p)
    assert freq[4] == 0.0  # zero hardness is never drawn


def test_exp_frequencies_match_softmax_probabilities_and_weights_are_inverse():
    dih = np.array([0.5, 1.0, 1.5, 2.0, 3.0])
    params = {"temperature": 2.0, "exploration": 0.1}
    p = exp_probabilities(dih, params, cycle=1)
    u = dih / dih.mean()
    expected = 0.9 * np.exp(2 * u) / np.exp(2 * u).sum() + 0.1 / 5
    np.testing.assert_allclose(p, expected)
    freq = _frequencies("dihcl-exp", dih, 6000, **params)
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / 6000)), (freq, p)
    sel = get_selector("dihcl-exp")(ctx(dih, **params), 3)
    np.testing.assert_allclose(sel.importance, 1.0 / (5 * p[sel.ids]), rtol=1e-6)


def test_exp_temperature_schedule_decays_to_floor():
    dih = np.array([1.0, 2.0])
    p1 = exp_probabilities(dih, {"exploration": 0.0}, cycle=1)  # beta 20
    p30 = exp_probabilities(dih, {"exploration": 0.0}, cycle=30)  # beta floored at 1
    u = dih / dih.mean()
    np.testing.assert_allclose(p1, np.exp(20 * u) / np.exp(20 * u).sum())
    np.testing.assert_allclose(p30, np.exp(u) / np.exp(u).sum())


def test_gumbel_top_k_has_the_sequential_draw_law_without_replacement():
    # P(first = i, second = j) = p_i * p_j / (1 - p_i) for successive draws without replacement.
    p = np.array([0.5, 0.3, 0.2])
    pairs = {}
    for seed in range(8000):
        ids = top_k(gumbel_keys(np.log(p), seed, 0, 0, 0), 2)
        pairs[tuple(ids)] = pairs.get(tuple(ids), 0) + 1
    for (i, j), c in pairs.items():
        exact = p[i] * p[j] / (1 - p[i])
        assert abs(c / 8000 - exact) < 4 * np.sqrt(exact * (1 - exact) / 8000)


def test_beta_prior_update_and_thompson_selection():
    s = HardnessStore(StoreConfig(n=4, epochs=5, method="dihcl-beta", metric="flip"))
    assert s.state.beta_alpha.tolist() == [2.0] * 4 and s.state.beta_beta.tolist() == [2.0] * 4
    s.ingest(batch([0, 1, 2], [1.0] * 3, [True, True, False], step=0, lr=0.1, seq=0))
    s.ingest(batch([0, 1, 2], [1.0] * 3, [False, True, False], step=1, lr=0.1, seq=1))
    s.ingest(batch([0, 1], [1.0] * 2, [True, True], step=2, lr=0.1, seq=2))
    # sample 0 flipped twice, sample 1 never (2 observations after the first), sample 2 once unflipped
    assert s.state.beta_alpha[:3].tolist() == [4.0, 2.0, 2.0]
    assert s.state.beta_beta[:3].tolist() == [2.0, 4.0, 3.0]
    s.state.beta_alpha[:] = [200.0, 1.0, 1.0, 1.0]
    s.state.beta_beta[:] = [1.0, 200.0, 200.0, 200.0]
    picks = [get_selector("dihcl-beta")(KeyContext(s.state, 0, 4, k, 0, 1, {}), 1).ids[0] for k in range(50)]
    assert picks == [0] * 50


def test_random_selector_is_uniform_without_replacement():
    sel = get_selector("random")(ctx(np.ones(100)), 100)
    assert sorted(sel.ids.tolist()) == list(range(100))
    freq = _frequencies("random", np.ones(5), 5000)
    np.testing.assert_allclose(freq, 0.2, atol=0.03)

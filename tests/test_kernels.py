"""The compiled passes a shard's selection is made of, against plain numpy on the same inputs."""

import numpy as np
import pytest

from scorer_service.core import counter_rng
from scorer_service.core.exact_sum import accumulator, add, exact_sum, to_float, total
from scorer_service.core.radix import above_cut, sortable
from scorer_service.core.reduce import bin_counts, bin_edges
from scorer_service.core.state import SampleState
from scorer_service.selection.diversity import DiversityTerm
from scorer_service.selection.registry import selector_spec
from scorer_service.selection.session import RoundPlan, ShardSession


def test_bin_counts_count_as_numpy_histogram_does():
    rng = np.random.default_rng(3)
    for trial in range(60):
        x = rng.gamma(2.0, 1.0, rng.integers(1, 3000))
        x[:: 1 + trial % 7] = np.round(x[:: 1 + trial % 7] * 4) / 4  # values on the edges
        x[::11] = np.nan
        finite = x[~np.isnan(x)]
        lo, hi = float(finite.min()), float(finite.max())
        if trial % 3 == 0:
            lo, hi = lo + 0.3, hi - 0.3  # values outside are not counted
        for bins in (1, 4, 20, 33):
            edges = bin_edges(lo, hi, bins)
            np.testing.assert_array_equal(bin_counts(x, edges), np.histogram(finite, bins=edges)[0])
    point = np.full(5, 2.5)
    np.testing.assert_array_equal(bin_counts(point, bin_edges(2.5, 2.5, 4)), np.histogram(point, 4)[0])


def test_above_cut_keeps_the_keys_above_and_the_first_ties():
    rng = np.random.default_rng(4)
    codes = sortable(rng.integers(0, 50, 10_000).astype(np.float64))
    threshold = np.sort(codes)[5_000]
    equal = np.flatnonzero(codes == threshold)
    for ties in (0, 1, len(equal) // 2, len(equal), len(equal) + 10):
        expected = np.sort(np.concatenate([np.flatnonzero(codes > threshold), equal[:ties]]))
        np.testing.assert_array_equal(above_cut(codes, threshold, np.int64(ties)), expected)


def test_an_accumulator_fed_value_by_value_is_the_exact_sum():
    import numba as nb

    @nb.njit
    def feed(values, acc):
        for v in values:
            add(acc, v)

    values = np.array([1e16, 1.0, -1e16, 3.5, 5e-324, -(2.0**-1074), 1e300, -1e300])
    acc = accumulator()
    feed(values, acc)
    assert total(acc) == exact_sum(values) and to_float(total(acc)) == 4.5
    feed(np.array([np.nan]), acc)
    with pytest.raises(ValueError, match="NaN or infinite"):
        total(acc)


def test_race_keys_have_the_sequential_draw_law_without_replacement():
    # P(first = i, second = j) = p_i * p_j / (1 - p_i) for successive draws without replacement.
    p = np.array([0.5, 0.3, 0.2])
    pairs: dict[tuple[int, int], int] = {}
    for seed in range(8000):
        keys = counter_rng.race_keys(p, seed, 0, 0, 0)
        pair = tuple(np.argsort(-keys)[:2].tolist())
        pairs[pair] = pairs.get(pair, 0) + 1
    for (i, j), c in pairs.items():
        exact = p[i] * p[j] / (1 - p[i])
        assert abs(c / 8000 - exact) < 4 * np.sqrt(exact * (1 - exact) / 8000)
    out = np.array([0.0, 2.0, 1.0])
    keys = counter_rng.race_keys(out, 1, 2, 0, 5, out=out)  # in place; a zero weight gets key 0
    assert keys is out and keys[0] == 0.0 and (keys[1:] > 0).all()


def test_set_importance_is_one_but_at_the_positions_given():
    s = SampleState(10)
    s.importance[:] = 7.0
    s.set_importance(np.array([0, 4, 9]), np.array([2.0, 3.0, 5.0], dtype=np.float32))
    assert s.importance.tolist() == [2, 1, 1, 1, 3, 1, 1, 1, 1, 5]
    s.set_importance(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    assert s.importance.tolist() == [1.0] * 10


def test_a_session_never_writes_its_codes_over_the_states_own_column():
    # A state whose DIH column is a plain array (as ``take`` makes), and no copy of it made at the
    # selection's opening: DIHCL-Greedy's keys are then that very column, and the codes must go
    # elsewhere (a session writes them over keys that are its own).
    full = SampleState(1000)
    full.dih[:] = np.random.default_rng(5).random(1000)
    state = full.take(np.arange(1000))
    before = state.dih.copy()
    session = ShardSession(state, 0, RoundPlan(1, "dihcl-greedy", 1000, 0, 1), None, DiversityTerm(), None)
    assert selector_spec("dihcl-greedy").keys(session.ctx) is state.dih
    session.keys({}, (0.0, 1.0), None)
    np.testing.assert_array_equal(state.dih, before)
    np.testing.assert_array_equal(session.codes, sortable(before))

"""Property-based: any malformed byproduct batch is rejected, names its problem, and changes nothing."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer_service.config import StoreConfig
from scorer_service.core.errors import InvalidBatch
from scorer_service.core.wire.batch import Ingested
from scorer_service.store import HardnessStore
from tests.helpers import batch

N = 16


def fresh_store() -> HardnessStore:
    s = HardnessStore(StoreConfig.create(n=N, epochs=4, metric="dloss", output_width=3))
    s.ingest(batch(range(8), np.linspace(0.1, 2.0, 8), [True, False] * 4, step=0, lr=0.1, seq=0))
    s.ingest(batch(range(4, 12), np.linspace(0.1, 2.0, 8), [True] * 8, step=1, lr=0.2, seq=1))
    return s


def good_batch(m: int, seq: int = 5) -> dict:
    return batch(range(12, 12 + m), np.ones(m), [True] * m, step=2, lr=0.3, seq=seq)


def _set(key, value):
    return lambda b: b.update({key: value})


# Each corruption: (name, strategy of mutations, text the error must contain)
CORRUPTIONS = [
    st.tuples(
        st.just("id range"),
        st.integers(N, 2**62).map(lambda v: _set("sample_id", np.array([12, v]))),
        st.just("out of range"),
    ),
    st.tuples(
        st.just("negative id"),
        st.integers(-(2**62), -1).map(lambda v: _set("sample_id", np.array([v, 12]))),
        st.just("out of range"),
    ),
    st.tuples(
        st.just("non-finite loss"),
        st.sampled_from([np.nan, np.inf, -np.inf]).map(
            lambda v: _set("loss", np.array([v, 1.0], np.float32))
        ),
        st.just("loss"),
    ),
    st.tuples(
        st.just("bad lr"),
        st.sampled_from([-1.0, np.nan, np.inf]).map(lambda v: _set("lr", np.array([v, v]))),
        st.just("lr"),
    ),
    st.tuples(
        st.just("length"),
        st.integers(0, 5).filter(lambda m: m != 2).map(lambda m: _set("correct", np.ones(m, dtype=bool))),
        st.just("lengths differ"),
    ),
    st.tuples(
        st.just("dtype"),
        st.sampled_from(["U3", "O", "complex128"]).map(lambda dt: _set("loss", np.array([1, 2]).astype(dt))),
        st.just("dtype"),
    ),
    st.tuples(
        st.just("not an array"),
        st.sampled_from([[1.0, 2.0], (1, 2), "ab", 3.0]).map(lambda v: _set("loss", v)),
        st.just("numpy array"),
    ),
    st.tuples(
        st.just("scalar field"),
        st.sampled_from(["round", "rank", "seq"]).flatmap(
            lambda k: st.sampled_from([-1, "1", 1.5, None, True]).map(lambda v: _set(k, v))
        ),
        st.just("non-negative integer"),
    ),
    st.tuples(
        st.just("sketch width"),
        st.integers(1, 6)
        .filter(lambda w: w != 3)
        .map(lambda w: _set("logit_sketch", np.zeros((2, w), np.float32))),
        st.just("width"),
    ),
    st.tuples(
        st.just("sketch nan"),
        st.just(_set("logit_sketch", np.full((2, 3), np.nan, np.float32))),
        st.just("NaN"),
    ),
    st.tuples(
        st.just("lr conflict"),
        st.floats(0.01, 5)
        .filter(lambda v: abs(v - 0.2) > 1e-3)
        .map(lambda v: lambda b: b.update(step=np.array([1, 1]), lr=np.array([v, v]))),
        st.just("step 1"),
    ),
    st.tuples(
        st.just("missing"),
        st.sampled_from(["sample_id", "loss", "correct", "step", "lr", "writer"]).map(
            lambda k: lambda b: b.pop(k)
        ),
        st.just("missing"),
    ),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(CORRUPTIONS))
def test_malformed_batches_are_rejected_and_change_nothing(corruption):
    name, mutate, message = corruption
    s = fresh_store()
    before, cum, counters = s.state.copy(), s.ingestor.lr_log.cum.copy(), dict(s.ingestor.counters)
    b = good_batch(2)
    mutate(b)
    try:
        s.ingest(b)
    except InvalidBatch as e:
        assert message in str(e), (name, str(e))
    else:
        raise AssertionError(f"{name}: accepted {b}")
    for col, values in before.columns.items():
        np.testing.assert_array_equal(s.state.columns[col], values, err_msg=col)
    for col, values in before.matrices.items():
        np.testing.assert_array_equal(s.state.matrices[col], values, err_msg=col)
    np.testing.assert_array_equal(s.ingestor.lr_log.cum, cum)
    assert s.ingestor.counters == {**counters, "rejected": counters["rejected"] + 1}
    assert s.ingest(good_batch(2)).applied == 2  # the store still works


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, N - 1), min_size=1, max_size=N, unique=True),
    st.lists(st.floats(0, 50, allow_nan=False), min_size=N, max_size=N),
)
def test_valid_batches_of_any_shape_are_applied_exactly_once(ids, losses):
    s = fresh_store()
    b = batch(ids, np.array(losses[: len(ids)]), [True] * len(ids), step=2, lr=0.3, seq=7)
    assert s.ingest(b) == Ingested(applied=len(ids), duplicate=False, lag_s=0.0)
    seen = s.state.seen.copy()
    assert s.ingest(b) == Ingested(applied=0, duplicate=True, lag_s=0.0)
    np.testing.assert_array_equal(s.state.seen, seen)

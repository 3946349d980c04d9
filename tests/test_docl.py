import numpy as np
import pytest

from scorer_service.core.docl import docl_observation, docl_update, residual
from scorer_service.core.wire.batch import OutputSketch

C, M = 1000, 32


def _sketched_and_exact(sketch: OutputSketch, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = sketch.project(x).astype(np.float64)
    ys = sketch.project(y).astype(np.float64)
    return np.einsum("bm,bm->b", xs, ys), np.einsum("bc,bc->b", x.astype(np.float64), y)


def test_sketch_inner_product_is_unbiased():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, C)).astype(np.float32)
    # Correlated pairs (cos ~ 0.75) keep the exact product away from 0, so relative errors are meaningful.
    y = (0.75 * x + 0.66 * rng.standard_normal((2000, C))).astype(np.float32)
    sketched, exact = _sketched_and_exact(OutputSketch(C, M, seed=3), x, y)
    rel = (sketched - exact) / exact
    # Per-pair std ~ sqrt((1 + cos^2) / m) / cos ~ 0.29, so the mean of 2000 has std ~ 0.007.
    assert abs(rel.mean()) < 0.03
    assert rel.std() == pytest.approx(np.sqrt((1 + 0.75**2) / M) / 0.75, rel=0.1)


def test_sketch_spread_matches_johnson_lindenstrauss():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2000, C)).astype(np.float32)
    y = rng.standard_normal((2000, C)).astype(np.float32)
    sketched, exact = _sketched_and_exact(OutputSketch(C, M, seed=4), x, y)
    norms = np.linalg.norm(x.astype(np.float64), axis=1) * np.linalg.norm(y.astype(np.float64), axis=1)
    err = (sketched - exact) / norms
    assert abs(err.mean()) < 0.02
    assert err.std() == pytest.approx(1 / np.sqrt(M), rel=0.1)


def test_sketch_dtype_width_and_overflow():
    s = OutputSketch(C, M)
    assert not s.exact and s.width == M and s.matrix.shape == (C, M)
    out = s.project(np.full((2, C), 1e6, dtype=np.float32))
    assert out.dtype == np.float16 and out.shape == (2, M) and np.all(np.isfinite(out))
    with pytest.raises(ValueError):
        s.project(np.zeros((2, C + 1)))


def test_exact_mode_is_identity():
    rng = np.random.default_rng(5)
    s = OutputSketch(128, M, seed=9)
    assert s.exact and s.width == 128 and s.matrix is None
    x = rng.standard_normal((7, 128)).astype(np.float32)
    out = s.project(x)
    assert out.dtype == np.float32 and np.array_equal(out, x)
    y = rng.standard_normal((7, 128)).astype(np.float32)
    assert np.array_equal((out * s.project(y)).sum(1), (x * y).sum(1))


def test_same_seed_same_matrix_across_instances_and_pinned():
    a, b, c = OutputSketch(C, M, seed=7), OutputSketch(C, M, seed=7), OutputSketch(C, M, seed=8)
    assert np.array_equal(a.matrix, b.matrix)
    assert not np.array_equal(a.matrix, c.matrix)
    # Pinned signs: a change in how the matrix is generated would silently desynchronize ranks
    # running different builds, and invalidate sketches already in a store.
    m0 = OutputSketch(C, M, seed=0).matrix
    assert (m0[0, :12] > 0).astype(int).tolist() == [1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]
    assert int((m0 > 0).sum()) == 15987
    assert np.all(np.abs(m0) == np.float32(1 / np.sqrt(M)))


def test_residual_rows_sum_to_zero_and_are_stable():
    rng = np.random.default_rng(6)
    z = (rng.standard_normal((50, 20)) * 1e4).astype(np.float32)
    y = rng.integers(0, 20, 50)
    r = residual(z, y)
    assert r.dtype == np.float32 and np.all(np.isfinite(r))
    np.testing.assert_allclose(r.sum(1), 0.0, atol=1e-6)
    assert np.all(r[np.arange(50), y] >= 0)


def test_residual_hand_example_and_temperature():
    z = np.array([[0.0, np.log(3.0)], [0.0, 2 * np.log(3.0)]])
    y = np.array([1, 0])
    np.testing.assert_allclose(residual(z[:1], y[:1]), [[-0.25, 0.25]])
    np.testing.assert_allclose(residual(z[1:], y[1:], temperature=2.0), [[0.75, -0.75]])
    with pytest.raises(ValueError):
        residual(z, np.array([0, 2]))


def test_docl_observation_hand_example():
    r = np.array([[1, 0], [0, 2]], dtype=np.float16)
    now = np.array([[3, 1], [1, 1]], dtype=np.float16)
    prev = np.array([[1, 1], [1, 0]], dtype=np.float16)
    # <r, now - prev> = [2, 2]; rho = [1, 1024 ** 0.1 = 2], mean 1.5 -> divide by [2/3, 4/3].
    a = docl_observation(r, now, prev, np.array([1.0, 1024.0]))
    np.testing.assert_allclose(a, [3.0, 1.5], rtol=1e-12)
    # With exponent 0 the normalization vanishes.
    np.testing.assert_allclose(docl_observation(r, now, prev, np.array([1.0, 1024.0]), exponent=0.0), [2, 2])
    with pytest.raises(ValueError):
        docl_observation(r, now, prev, np.array([1.0, 0.0]))


def test_docl_update_hand_example():
    score = np.array([1.0, 2.0, np.nan], dtype=np.float32)
    obs = np.array([3.0, 4.0, 5.0])
    first = np.array([False, False, True])
    before = score.copy()
    new = docl_update(score, obs, first)
    assert new.dtype == np.float32
    np.testing.assert_array_equal(new, [2.0, 3.0, 5.0])
    np.testing.assert_array_equal(score, before, strict=True)
    np.testing.assert_array_equal(docl_update(score, obs, first, weight=0.25), [1.5, 2.5, 5.0])

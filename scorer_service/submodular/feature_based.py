"""Feature-based functions: concave over modular on non-negative features (Wei, Iyer & Bilmes, ICML 2015)."""

from __future__ import annotations

import numba as nb
import numpy as np

from scorer_service.submodular.setfunction import CONCAVE, FEATURE, SetFunction, _as_features, _pack


def feature_scale(embeddings: np.ndarray) -> float:
    """The mean absolute coordinate, by which :func:`nonnegative_features` divides (1 if all zero)."""
    scale = float(np.abs(_as_features(embeddings)).mean(dtype=np.float64))
    return scale if scale > 0.0 else 1.0


def nonnegative_features(embeddings: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Non-negative features for :class:`FeatureBased` from real-valued embedding sketches.

    Each coordinate z is split into its positive and negative parts ``[max(z, 0), max(-z, 0)]``
    (2d features): a random-projection sketch is symmetric about 0, so a direction and its opposite
    are different "concepts" and nothing is lost, unlike clipping or a per-column min-shift, which
    would make every sample cover every feature. The result is divided by ``scale``, by default
    the mean absolute coordinate (:func:`feature_scale`), so values are O(1) whatever the sketch
    scale (``log`` is not scale-free); blocks of one ground set pass the whole set's scale.
    """
    z = _as_features(embeddings)
    return _split(z, np.float32(feature_scale(z) if scale is None else scale))


@nb.njit(cache=True, nogil=True)
def _split(z: np.ndarray, scale: np.float32) -> np.ndarray:
    # One pass, the same values as max(z / scale, 0) and max(-(z / scale), 0) in numpy.
    n, d = z.shape
    out = np.empty((n, 2 * d), dtype=np.float32)
    zero = np.float32(0.0)
    for i in range(n):
        for j in range(d):
            v = z[i, j] / scale
            out[i, j] = v if v >= zero else zero
            out[i, d + j] = -v if -v >= zero else zero
    return out


class FeatureBased(SetFunction):
    """Concave over modular: ``G(S) = sum_f phi(sum_{i in S} x_if)``, phi = sqrt or log1p.

    Wei, Iyer & Bilmes (ICML 2015, "Submodularity in data subset selection and active learning").
    ``features`` must be non-negative (see :func:`nonnegative_features`); the memo is the per-feature
    sum over S, so a gain costs O(#features) and memory is O(n * #features). The sqrt gain is computed
    in float32 (relative error about 1e-6), the log gain in float64.

    ``baseline`` (non-negative, one per feature) is a feature mass already covered from elsewhere:
    ``G(S) = sum_f phi(b_f + sum_{i in S} x_if) - phi(b_f)``, still normalized, monotone and
    submodular. A block of a partitioned selection passes what the other blocks are expected to
    cover, so it does not spend its budget on features that the whole selection saturates anyway.
    """

    kind = FEATURE

    def __init__(
        self, features: np.ndarray, *, concave: str = "sqrt", baseline: np.ndarray | None = None
    ) -> None:
        x = _as_features(features)
        if (x < 0).any():
            raise ValueError("features must be non-negative; see nonnegative_features()")
        if concave not in CONCAVE:
            raise ValueError(f"unknown concave function {concave!r}; expected one of {sorted(CONCAVE)}")
        d = x.shape[1]
        b = np.zeros(d) if baseline is None else np.asarray(baseline, dtype=np.float64)
        if b.shape != (d,) or not np.isfinite(b).all() or (b < 0).any():
            raise ValueError(f"baseline must be {d} finite non-negative values")
        self.features = x
        self.concave = concave
        self.baseline = b
        self.n = x.shape[0]
        # The per-feature float64 sums, then the same sums and their square roots as float32
        # (2d float32 in the other d float64 slots) for the sqrt gain.
        self.memo_size = 2 * d
        self.data = _pack(features=x, concave=CONCAVE[concave])
        super().__init__()

    def new_memo(self) -> np.ndarray:
        memo = np.zeros(self.memo_size)
        d = self.baseline.shape[0]
        memo[:d] = self.baseline
        m32 = memo[d:].view(np.float32)
        m32[:d] = self.baseline
        m32[d:] = np.sqrt(m32[:d])
        return memo

    def _phi(self, v: np.ndarray) -> np.ndarray:
        return np.sqrt(v) if self.concave == "sqrt" else np.log1p(v)

    def _value(self, sums: np.ndarray) -> float:
        return float((self._phi(self.baseline + sums) - self._phi(self.baseline)).sum())

    def evaluate(self, subset: np.ndarray) -> float:
        subset = np.asarray(subset, dtype=np.int64)
        return self._value(self.features[subset].astype(np.float64).sum(axis=0))

    def full_value(self) -> float:
        return self._value(self.features.astype(np.float64).sum(axis=0))

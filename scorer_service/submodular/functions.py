"""Monotone submodular set functions that know their own memoized marginal gains.

As in apricot (Schreiber, Bilmes & Noble, JMLR 2020) a *function* owns its memo and computes
``f(e | S) = f(S + e) - f(S)`` from it, while an *optimizer* (``optimizers.py``) only decides which
element to add. The functions are the diversity terms of DIHCL Eq. 3 (Zhou, Wang & Bilmes, NeurIPS
2020) and DoCL Eq. 15, combined with a modular hardness term in :class:`Objective`:

    F(S) = sum_{i in S} m_i + w * G(S),   m_i >= 0, w >= 0,

which is monotone submodular whenever G is (Mirzasoleiman et al., AAAI 2015, Sec. 2).

Three G are provided, all on the same ground set that they select from:

* :class:`FacilityLocation` -- ``G(S) = sum_j max_{i in S} w_ij`` with the Gaussian kernel
  ``w_ij = exp(-||z_i - z_j||^2 / (2 sigma^2))``; dense kernel, capped in size.
* :class:`KNNFacilityLocation` -- the same with ``w`` restricted to a symmetrised k-nearest-neighbour
  graph (plus ``w_ii = 1``), so a gain costs O(degree) instead of O(n).
* :class:`FeatureBased` -- concave over modular, ``G(S) = sum_f phi(sum_{i in S} x_if)`` with
  ``phi`` = sqrt or log1p on non-negative features (Wei, Iyer & Bilmes, ICML 2015).

The gain and memo-update kernels are numba functions dispatched on an integer kind, so the
optimizers' inner loops run compiled with no Python call per evaluation. ``evaluate`` recomputes a
value from scratch with independent numpy code; the tests hold the memoized gains to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numba as nb
import numpy as np

MODULAR = 0
FL_DENSE = 1
FL_SPARSE = 2
FEATURE = 3

SQRT = 0
LOG = 1
CONCAVE = {"sqrt": SQRT, "log": LOG}

DENSE_KERNEL_BYTES = 512 * 2**20
"""Largest dense float32 kernel :class:`FacilityLocation` builds (512 MiB: n <= 11585)."""

_EMPTY_F32_2D = np.zeros((0, 0), dtype=np.float32)
_EMPTY_F32 = np.zeros(0, dtype=np.float32)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_I32 = np.zeros(0, dtype=np.int32)


def _pack(
    kernel: np.ndarray = _EMPTY_F32_2D,
    features: np.ndarray = _EMPTY_F32_2D,
    indptr: np.ndarray = _EMPTY_I64,
    indices: np.ndarray = _EMPTY_I32,
    weights: np.ndarray = _EMPTY_F32,
    concave: int = SQRT,
) -> tuple:
    # One tuple type for every kind: each numba kernel is compiled (and cached) once, not per kind.
    return (kernel, features, indptr, indices, weights, np.int64(concave))


# Reassociation lets the reductions vectorize (4-8x on dense rows); inputs are checked finite, so
# "no NaN" holds. The summation order is then fixed by this one compiled function.
_FAST = {"reassoc", "nsz", "nnan"}


@nb.njit(cache=True, nogil=True, fastmath=_FAST)
def diversity_gain(kind: int, data: tuple, memo: np.ndarray, e: int) -> float:
    """``G(e | S)`` from the memo of S.

    Every term is a non-increasing function of the memo, summed in an order fixed by the compiled
    code, so a gain computed earlier is an exact (not just approximate) upper bound of the gain
    now: the lazy optimizers rely on that to return exactly the greedy set.
    """
    kernel, features, indptr, indices, weights, concave = data
    acc = 0.0
    if kind == FL_DENSE:
        row = kernel[e]
        for j in range(row.shape[0]):
            d = row[j] - memo[j]
            if d > 0.0:
                acc += d
    elif kind == FL_SPARSE:
        for p in range(indptr[e], indptr[e + 1]):
            d = weights[p] - memo[indices[p]]
            if d > 0.0:
                acc += d
    elif kind == FEATURE:
        row = features[e]
        d = row.shape[0]
        if concave == SQRT:
            # float32 throughout: twice the SIMD lanes of float64 and a hardware float32 sqrt, about
            # 4x faster per gain. Every step rounds monotonically, so the bound property holds.
            m32 = memo[d:].view(np.float32)
            a32 = np.float32(0.0)
            for f in range(d):
                x = row[f]
                # sqrt(c + x) - sqrt(c) without cancellation, sqrt(c) kept in the memo; branch-free
                # (x = c = 0 gives 0) so the loop vectorizes.
                den = np.float32(math.sqrt(m32[f] + x)) + m32[d + f]
                a32 += x / den if den > np.float32(0.0) else np.float32(0.0)
            acc = np.float64(a32)
        else:
            for f in range(d):
                acc += math.log1p(row[f] / (1.0 + memo[f]))
    return acc


@nb.njit(cache=True, nogil=True, fastmath=_FAST)
def dense_gains4(kernel: np.ndarray, memo: np.ndarray, cand: np.ndarray, out: np.ndarray) -> None:
    """Dense facility-location gains of four candidates in one pass over the memo.

    The rows stream from memory side by side (four loads in flight) and the memo is read once,
    which halves the time per gain when rows do not fit in cache. Every lane sums in the same order.
    """
    r0, r1, r2, r3 = kernel[cand[0]], kernel[cand[1]], kernel[cand[2]], kernel[cand[3]]
    a0 = a1 = a2 = a3 = 0.0
    for j in range(r0.shape[0]):
        c = memo[j]
        d = r0[j] - c
        if d > 0.0:
            a0 += d
        d = r1[j] - c
        if d > 0.0:
            a1 += d
        d = r2[j] - c
        if d > 0.0:
            a2 += d
        d = r3[j] - c
        if d > 0.0:
            a3 += d
    out[0], out[1], out[2], out[3] = a0, a1, a2, a3


@nb.njit(cache=True, nogil=True)
def diversity_update(kind: int, data: tuple, memo: np.ndarray, e: int) -> None:
    """Turn the memo of S into the memo of S + e."""
    kernel, features, indptr, indices, weights, _ = data
    if kind == FL_DENSE:
        row = kernel[e]
        for j in range(row.shape[0]):
            memo[j] = max(memo[j], row[j])
    elif kind == FL_SPARSE:
        for p in range(indptr[e], indptr[e + 1]):
            j = indices[p]
            if weights[p] > memo[j]:
                memo[j] = weights[p]
    elif kind == FEATURE:
        row = features[e]
        d = row.shape[0]
        m32 = memo[d:].view(np.float32)
        for f in range(d):
            memo[f] += row[f]
            # Rounded from the float64 sum, not accumulated in float32: no drift over many adds.
            m32[f] = np.float32(memo[f])
            m32[d + f] = np.float32(math.sqrt(m32[f]))


@nb.njit(cache=True, nogil=True)
def _gains(
    kind: int, data: tuple, memo: np.ndarray, modular: np.ndarray, weight: float, cand: np.ndarray
) -> np.ndarray:
    out = np.empty(cand.shape[0])
    for c in range(cand.shape[0]):
        out[c] = modular[cand[c]] + weight * diversity_gain(kind, data, memo, cand[c])
    return out


def _as_features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-d (n, d), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return x


def mean_pairwise_distance(x: np.ndarray, rng: np.random.Generator, n_pairs: int = 4096) -> float:
    """sigma of the DIHCL kernel: the mean Euclidean distance over pairs i != j.

    Exact when there are at most ``n_pairs`` pairs, else estimated from ``n_pairs`` uniformly drawn
    distinct pairs (standard error ~ std / 64 at the default). Returns 1.0 when every distance is
    zero, so the kernel stays defined.
    """
    n = x.shape[0]
    if n < 2:
        return 1.0
    if n * (n - 1) // 2 <= n_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        i = rng.integers(0, n, n_pairs)
        j = rng.integers(0, n - 1, n_pairs)
        j += j >= i
    diff = x[i].astype(np.float64) - x[j].astype(np.float64)
    sigma = float(np.sqrt(np.einsum("ij,ij->i", diff, diff)).mean())
    return sigma if sigma > 0.0 else 1.0


@nb.njit(cache=True, nogil=True, fastmath=True)
def _neg_scaled_sq_dist(dots: np.ndarray, sqn_rows: np.ndarray, sqn_cols: np.ndarray, inv: float) -> None:
    # In place: <x_i, y_j> -> -max(||x_i - y_j||^2, 0) / (2 sigma^2), one pass instead of five numpy ones.
    for i in range(dots.shape[0]):
        si = sqn_rows[i]
        row = dots[i]
        for j in range(row.shape[0]):
            row[j] = -max(si + sqn_cols[j] - np.float32(2.0) * row[j], np.float32(0.0)) * inv


def gaussian_kernel(x: np.ndarray, sigma: float, y: np.ndarray | None = None) -> np.ndarray:
    """Dense ``exp(-||x_i - y_j||^2 / (2 sigma^2))`` in float32, built in place (no n^2 temporaries).

    ``y`` defaults to ``x`` (a square kernel with an exact unit diagonal).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    yy = x if y is None else np.ascontiguousarray(y, dtype=np.float32)
    sqn_x = np.einsum("ij,ij->i", x, x)
    sqn_y = sqn_x if y is None else np.einsum("ij,ij->i", yy, yy)
    # A contiguous transpose: sgemm on the y.T view takes a path several times slower.
    k = x @ np.ascontiguousarray(yy.T)
    _neg_scaled_sq_dist(k, sqn_x, sqn_y, np.float32(0.5 / sigma**2))
    np.exp(k, out=k)
    if y is None:
        np.fill_diagonal(k, 1.0)
    return k


class SetFunction:
    """A normalized monotone submodular function on ``{0, ..., n-1}`` with memoized gains.

    Subclasses set ``kind``, ``n``, ``data`` (the numba tuple) and ``memo_size`` and implement
    ``evaluate``. The memoized interface (``reset``/``gains``/``add``) is what the optimizers use,
    compiled; it is exposed here for tests and custom optimizers.
    """

    kind: int
    n: int
    data: tuple
    memo_size: int

    def __init__(self) -> None:
        self.reset()

    def evaluate(self, subset: np.ndarray) -> float:
        """``G(S)``, recomputed from scratch."""
        raise NotImplementedError

    def full_value(self) -> float:
        """``G(V)``, the value of the whole ground set."""
        return self.evaluate(np.arange(self.n))

    def new_memo(self) -> np.ndarray:
        return np.zeros(self.memo_size)

    def reset(self) -> None:
        """Forget the current set: back to ``S = {}``."""
        self.memo = self.new_memo()
        self.selected: list[int] = []

    def gains(self, candidates: np.ndarray) -> np.ndarray:
        """``G(e | S)`` for each candidate e, from the memo of the current S."""
        cand = np.ascontiguousarray(candidates, dtype=np.int64)
        return _gains(self.kind, self.data, self.memo, np.zeros(self.n), 1.0, cand)

    def add(self, e: int) -> None:
        """``S <- S + e``."""
        diversity_update(self.kind, self.data, self.memo, int(e))
        self.selected.append(int(e))


class FacilityLocation(SetFunction):
    """Facility location over a dense Gaussian kernel (DIHCL Eq. 3; Mirzasoleiman et al. 2015).

    ``G(S) = sum_{j in V} max_{i in S} w_ij``, ``w_ij = exp(-||z_i - z_j||^2 / (2 sigma^2))``, sigma the
    mean pairwise distance (:func:`mean_pairwise_distance`) unless given. The memo is the coverage
    ``c_j = max_{i in S} w_ij``. The float32 kernel is n^2 * 4 bytes, so ground sets with a kernel
    over ``max_kernel_bytes`` are refused: split them with ``partition.partitioned_select``.

    A precomputed ``kernel`` may be rectangular, candidates x ground set: ``w_ij`` between candidate
    i and ground element j, so candidates are chosen to cover another set (a merge round's union
    covering the whole ground set).
    """

    kind = FL_DENSE

    def __init__(
        self,
        embeddings: np.ndarray | None = None,
        *,
        sigma: float | None = None,
        rng: np.random.Generator | None = None,
        kernel: np.ndarray | None = None,
        max_kernel_bytes: int = DENSE_KERNEL_BYTES,
    ) -> None:
        if kernel is None:
            if embeddings is None:
                raise ValueError("give embeddings or a precomputed kernel")
            x = _as_features(embeddings)
            n = x.shape[0]
            if 4 * n * n > max_kernel_bytes:
                raise ValueError(
                    f"a dense kernel on {n} elements needs {4 * n * n / 2**20:.0f} MiB, over the "
                    f"{max_kernel_bytes / 2**20:.0f} MiB cap; partition the ground set or use the kNN variant"
                )
            if sigma is None:
                sigma = mean_pairwise_distance(x, rng if rng is not None else np.random.default_rng(0))
            kernel = gaussian_kernel(x, sigma)
        else:
            kernel = np.ascontiguousarray(kernel, dtype=np.float32)
            if kernel.ndim != 2:
                raise ValueError(f"kernel must be 2-d, got shape {kernel.shape}")
        self.sigma = sigma
        self.kernel = kernel
        self.n, self.memo_size = kernel.shape
        self.data = _pack(kernel=kernel)
        super().__init__()

    def evaluate(self, subset: np.ndarray) -> float:
        subset = np.asarray(subset, dtype=np.int64)
        if subset.size == 0:
            return 0.0
        return float(self.kernel[subset].max(axis=0).astype(np.float64).sum())

    def full_value(self) -> float:
        square = self.n == self.memo_size
        return float(self.n) if square and np.all(np.diagonal(self.kernel) == 1.0) else super().full_value()


@nb.njit(cache=True, nogil=True)
def _nearest_in_tile(
    dots: np.ndarray,
    sqn_cols: np.ndarray,
    r0: int,
    c0: int,
    best_idx: np.ndarray,
    best_key: np.ndarray,
) -> None:
    # Tile of dot products between rows r0.. and columns c0..; keeps, per row, the kk columns of
    # smallest ||x_j||^2 - 2 <x_i, x_j> (the row's own ||x_i||^2 does not change the ranking) in a
    # sorted buffer. Keys are computed in a separate, vectorized pass; the scan then costs one
    # well-predicted comparison per entry once the buffer is full.
    kk = best_key.shape[1]
    nc = dots.shape[1]
    keys = np.empty(nc, dtype=np.float32)
    for i in range(dots.shape[0]):
        row = r0 + i
        drow = dots[i]
        for j in range(nc):
            keys[j] = sqn_cols[j] - np.float32(2.0) * drow[j]
        if c0 <= row < c0 + nc:
            keys[row - c0] = np.inf
        worst = best_key[row, kk - 1]
        for j in range(nc):
            key = keys[j]
            if key < worst:
                pos = kk - 1
                while pos > 0 and best_key[row, pos - 1] > key:
                    best_key[row, pos] = best_key[row, pos - 1]
                    best_idx[row, pos] = best_idx[row, pos - 1]
                    pos -= 1
                best_key[row, pos] = key
                best_idx[row, pos] = c0 + j
                worst = best_key[row, kk - 1]


def _block_neighbours(x: np.ndarray, kk: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    # Exact kk nearest neighbours within x, tile x tile sgemm blocks so every tile stays in cache.
    b = x.shape[0]
    sqn = np.einsum("ij,ij->i", x, x)
    best_idx = np.zeros((b, kk), dtype=np.int64)
    best_key = np.full((b, kk), np.inf, dtype=np.float32)
    # Contiguous transposed column tiles: sgemm on transposed or strided views is several times slower.
    cols = [(c0, np.ascontiguousarray(x[c0 : c0 + tile].T)) for c0 in range(0, b, tile)]
    for r0 in range(0, b, tile):
        xr = x[r0 : r0 + tile]
        for c0, xt in cols:
            _nearest_in_tile(xr @ xt, sqn[c0 : c0 + tile], r0, c0, best_idx, best_key)
    d2 = np.maximum(best_key + sqn[:, None], 0.0)
    return best_idx, d2


@nb.njit(cache=True, nogil=True)
def _symmetric_csr(
    n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Union of the directed edges and their reverses plus unit self-loops, one row per source with
    # sorted, unique columns; a duplicated pair keeps its larger weight (both directions carry the
    # same distance up to sgemm rounding).
    deg = np.ones(n, dtype=np.int64)
    for p in range(src.shape[0]):
        deg[src[p]] += 1
        deg[dst[p]] += 1
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        start[i + 1] = start[i] + deg[i]
    cols = np.empty(start[n], dtype=np.int32)
    vals = np.empty(start[n], dtype=np.float32)
    fill = start[:n].copy()
    for i in range(n):
        cols[fill[i]] = i
        vals[fill[i]] = 1.0
        fill[i] += 1
    for p in range(src.shape[0]):
        a, b = src[p], dst[p]
        cols[fill[a]] = b
        vals[fill[a]] = w[p]
        fill[a] += 1
        cols[fill[b]] = a
        vals[fill[b]] = w[p]
        fill[b] += 1
    indptr = np.zeros(n + 1, dtype=np.int64)
    out = 0
    for i in range(n):
        lo, hi = start[i], start[i + 1]
        for q in range(lo + 1, hi):  # insertion sort: rows hold ~2 * n_neighbors entries
            c, v = cols[q], vals[q]
            r = q
            while r > lo and cols[r - 1] > c:
                cols[r] = cols[r - 1]
                vals[r] = vals[r - 1]
                r -= 1
            cols[r] = c
            vals[r] = v
        for q in range(lo, hi):
            if out > indptr[i] and cols[out - 1] == cols[q]:
                vals[out - 1] = max(vals[out - 1], vals[q])
            else:
                cols[out] = cols[q]
                vals[out] = vals[q]
                out += 1
        indptr[i + 1] = out
    return indptr, cols[:out].copy(), vals[:out].copy()


def knn_graph(
    embeddings: np.ndarray,
    n_neighbors: int,
    sigma: float,
    *,
    blocks: list[np.ndarray] | None = None,
    tile: int = 1024,
    map_fn: Callable[[Callable, Iterable], Iterable] = map,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetrised kNN graph with Gaussian weights and unit self-loops, as CSR arrays.

    Within each block (default: one block, the whole set) the ``n_neighbors`` nearest neighbours are
    exact, found from ``tile x tile`` sgemm tiles (memory O(tile^2 + n * n_neighbors), never n^2);
    blocks are searched through ``map_fn`` (e.g. a thread pool).
    An edge is kept if either end has the other among its neighbours (union), with weight
    ``exp(-d^2 / (2 sigma^2))``. Returns ``(indptr int64, indices int32, weights float32)`` with each
    row's columns sorted.
    """
    x = _as_features(embeddings)
    n = x.shape[0]
    if blocks is None:
        blocks = [np.arange(n)]
    inv = np.float32(0.5 / sigma**2)
    blocks = [b for b in blocks if b.shape[0] > 1]

    def search(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kk = min(n_neighbors, block.shape[0] - 1)
        idx, d2 = _block_neighbours(x[block], kk, tile)
        return np.repeat(block, kk), block[idx.ravel()], np.exp(-d2 * inv).ravel()

    found = list(map_fn(search, blocks))
    srcs = [np.zeros(0, dtype=np.int64), *(f[0] for f in found)]
    dsts = [np.zeros(0, dtype=np.int64), *(f[1] for f in found)]
    ws = [np.zeros(0, dtype=np.float32), *(f[2] for f in found)]
    return _symmetric_csr(n, np.concatenate(srcs), np.concatenate(dsts), np.concatenate(ws))


class KNNFacilityLocation(SetFunction):
    """Facility location over a sparse kNN graph (the "sparse" mode of apricot and submodlib).

    ``G(S) = sum_j max_{i in S} w_ij`` where ``w_ij`` is the Gaussian kernel on the edges of the
    symmetrised ``n_neighbors``-NN graph (:func:`knn_graph`, exact within each of ``blocks``) and
    ``w_ii = 1``; absent edges count 0. A gain costs O(degree). A prebuilt graph can be passed as
    ``graph=(indptr, indices, weights)``; it must contain the unit self-loops. With ``n_ground`` its
    rows are the candidates and its columns index a ground set of that size (a merge round's union
    covering the whole graph).
    """

    kind = FL_SPARSE

    def __init__(
        self,
        embeddings: np.ndarray | None = None,
        *,
        n_neighbors: int = 10,
        sigma: float | None = None,
        rng: np.random.Generator | None = None,
        blocks: list[np.ndarray] | None = None,
        graph: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        n_ground: int | None = None,
    ) -> None:
        if graph is None:
            if embeddings is None:
                raise ValueError("give embeddings or a prebuilt graph")
            x = _as_features(embeddings)
            if sigma is None:
                sigma = mean_pairwise_distance(x, rng if rng is not None else np.random.default_rng(0))
            graph = knn_graph(x, n_neighbors, sigma, blocks=blocks)
        indptr, indices, weights = graph
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.sigma = sigma
        self.n = self.indptr.shape[0] - 1
        self.memo_size = self.n if n_ground is None else int(n_ground)
        self.data = _pack(indptr=self.indptr, indices=self.indices, weights=self.weights)
        super().__init__()

    def evaluate(self, subset: np.ndarray) -> float:
        subset = np.asarray(subset, dtype=np.int64)
        cover = np.zeros(self.memo_size, dtype=np.float32)
        if subset.size:
            counts = self.indptr[subset + 1] - self.indptr[subset]
            pos = np.repeat(self.indptr[subset] - np.cumsum(counts) + counts, counts) + np.arange(
                counts.sum()
            )
            np.maximum.at(cover, self.indices[pos], self.weights[pos])
        return float(cover.astype(np.float64).sum())

    def full_value(self) -> float:
        return self.evaluate(np.arange(self.n))


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
    z = z / np.float32(feature_scale(z) if scale is None else scale)
    return np.ascontiguousarray(np.concatenate([np.maximum(z, 0.0), np.maximum(-z, 0.0)], axis=1))


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


class Modular(SetFunction):
    """``G(S) = 0``: with :class:`Objective` this leaves the modular term alone (plain top-k)."""

    kind = MODULAR

    def __init__(self, n: int) -> None:
        self.n = n
        self.memo_size = 0
        self.data = _pack()
        super().__init__()

    def evaluate(self, subset: np.ndarray) -> float:
        return 0.0


class Objective:
    """``F(S) = sum_{i in S} m_i + weight * G(S)`` (DIHCL Eq. 3 with ``m = r_t``, ``weight = lambda_t``).

    ``modular`` must be non-negative and ``weight >= 0`` so F stays monotone submodular (shift a
    real-valued score by its minimum first: with |S| = k fixed that only adds a constant).
    """

    def __init__(self, modular: np.ndarray | None, diversity: SetFunction | None = None, weight: float = 1.0):
        if diversity is None:
            if modular is None:
                raise ValueError("give a modular term, a diversity function, or both")
            diversity = Modular(np.asarray(modular).shape[0])
        n = diversity.n
        m = np.zeros(n) if modular is None else np.ascontiguousarray(modular, dtype=np.float64)
        if m.shape != (n,):
            raise ValueError(f"modular term has shape {m.shape}, expected ({n},)")
        if not np.isfinite(m).all() or (m < 0).any():
            raise ValueError("modular term must be finite and non-negative")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight must be finite and >= 0, got {weight}")
        self.modular = m
        self.diversity = diversity
        self.weight = float(weight)
        self.n = n

    def evaluate(self, subset: np.ndarray) -> float:
        """``F(S)``, recomputed from scratch."""
        subset = np.asarray(subset, dtype=np.int64)
        return float(self.modular[subset].sum()) + self.weight * self.diversity.evaluate(subset)

    def reset(self) -> None:
        self.diversity.reset()

    def gains(self, candidates: np.ndarray) -> np.ndarray:
        """``F(e | S)`` for each candidate, from the memo of the current S."""
        cand = np.ascontiguousarray(candidates, dtype=np.int64)
        g = self.diversity
        return _gains(g.kind, g.data, g.memo, self.modular, self.weight, cand)

    def add(self, e: int) -> None:
        self.diversity.add(e)

    @property
    def selected(self) -> list[int]:
        return self.diversity.selected


def _dense_fl(embeddings: np.ndarray, *, sigma: float, rng: np.random.Generator) -> SetFunction:
    return FacilityLocation(embeddings, sigma=sigma, rng=rng)


def _knn_fl(embeddings: np.ndarray, *, sigma: float, rng: np.random.Generator) -> SetFunction:
    return KNNFacilityLocation(embeddings, sigma=sigma, rng=rng)


def _feature_sqrt(embeddings: np.ndarray, *, sigma: float, rng: np.random.Generator) -> SetFunction:
    return FeatureBased(nonnegative_features(embeddings), concave="sqrt")


def _feature_log(embeddings: np.ndarray, *, sigma: float, rng: np.random.Generator) -> SetFunction:
    return FeatureBased(nonnegative_features(embeddings), concave="log")


FUNCTIONS = {
    "fl": _dense_fl,
    "fl-knn": _knn_fl,
    "feature": _feature_sqrt,
    "feature-log": _feature_log,
}
"""Diversity terms by name: ``builder(embeddings, *, sigma, rng) -> SetFunction`` on those rows.

``sigma`` is the Gaussian kernel width (ignored by the feature-based terms)."""

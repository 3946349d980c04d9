"""Facility location on a Gaussian kernel over embedding sketches: dense, or on a kNN graph.

``G(S) = sum_j max_{i in S} w_ij`` with ``w_ij = exp(-||z_i - z_j||^2 / (2 sigma^2))`` (DIHCL Eq. 3;
Mirzasoleiman et al. 2015): :class:`FacilityLocation` on the dense kernel (capped in size),
:class:`KNNFacilityLocation` on a symmetrised k-nearest-neighbour graph (plus ``w_ii = 1``), so a gain
costs O(degree) instead of O(n).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numba as nb
import numpy as np

from scorer_service.submodular.setfunction import (
    DENSE_KERNEL_BYTES,
    FL_DENSE,
    FL_SPARSE,
    SetFunction,
    _as_features,
    _pack,
)


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
def _neg_scaled_sq_dist(
    dots: np.ndarray, sqn_rows: np.ndarray, sqn_cols: np.ndarray, inv: np.float32
) -> None:
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

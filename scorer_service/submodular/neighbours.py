"""Locality for large ground sets: k-means cells (faiss) and the approximate kNN graph built on them.

The coarse quantizer is faiss's k-means (Johnson, Douze & Jegou, "Billion-scale similarity search
with GPUs", 2019). Its cells serve two purposes:

* blocks of a partitioned selection that keep neighbours together (``partition.make_blocks``);
* the inverted lists of an IVF index searched with one probe: every candidate's neighbours are
  looked up exactly within its own cell. The search is done per cell with the same tiled sgemm
  as the exact graph (``functions.knn_graph``): with a query set equal to the database, batching a
  whole list at once is several times faster than faiss's per-query list scan, and at these list
  sizes about twice as fast as ``faiss.knn`` (measured; see BENCHMARKS.md, "Selection").

Neighbours across a cell boundary are lost. On clustered sketches (d = 32) that cost facility
location about nothing (a cell of ~2k points holds the local neighbourhood that matters for
coverage), while the graph costs O(m * cell) instead of O(m^2).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np
from threadpoolctl import threadpool_limits

from scorer_service.submodular.functions import knn_graph

EXACT_KNN_MAX = 16384
"""Up to this many candidates the kNN graph is exact (O(m^2 d) sgemm, well under a second)."""

CELL_SIZE = 2048
"""Largest inverted list of the approximate graph: its cost is O(m * CELL_SIZE * d)."""

KMEANS_ITERATIONS = 10


def thread_map(fn: Callable, items: Iterable) -> Iterable:
    """``map`` over a thread pool: the optimizers, the graph kernels and BLAS release the GIL."""
    items = list(items)
    if len(items) <= 1:
        return map(fn, items)
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


def _kmeans_assign(x: np.ndarray, parts: int, seed: int) -> np.ndarray:
    # Imported here, where cells are built: importing faiss logs which CPU build it loads, and every
    # process that imports the store's settings (each trainer) would print that.
    import faiss

    km = faiss.Kmeans(
        x.shape[1],
        parts,
        niter=KMEANS_ITERATIONS,
        seed=seed,
        # faiss trains on at most 256 points per centroid (a uniform sample) and only warns below 39;
        # cells here are thousands of points, so the sample is large and the warning is noise.
        max_points_per_centroid=256,
        min_points_per_centroid=1,
    )
    # One OpenMP thread: the store selects while trainers hold the cores, and OpenMP's barriers
    # stall whenever one of its threads is descheduled (measured 0.2 s idle vs 2.6-9 s at load 7
    # on 2 cores). Single-threaded k-means on the sample is a few hundred ms at 640k points.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km.train(x)
        _, assign = km.index.search(x, 1)
    finally:
        faiss.omp_set_num_threads(threads)
    return assign[:, 0]


def kmeans_cells(embeddings: np.ndarray, max_size: int, seed: int) -> list[np.ndarray]:
    """Positions ``0..m-1`` grouped into k-means cells of at most ``max_size`` points.

    ``ceil(m / max_size)`` centroids first; a cell that comes out larger is split again by k-means
    on its own points (k-means cells are uneven). Points k-means cannot separate (duplicates) are
    cut into equal runs in index order. Deterministic for a given ``seed``.
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    out: list[np.ndarray] = []
    pending = [np.arange(x.shape[0], dtype=np.int64)]
    while pending:
        group = pending.pop()
        if group.shape[0] <= max_size:
            if group.shape[0]:
                out.append(group)
            continue
        parts = math.ceil(group.shape[0] / max_size)
        assign = _kmeans_assign(x[group], parts, seed)
        order = np.argsort(assign, kind="stable")
        cuts = np.flatnonzero(np.diff(assign[order])) + 1
        pieces = np.split(group[order], cuts)
        if len(pieces) == 1:
            out.extend(np.array_split(group, parts))
        else:
            pending.extend(pieces)
    out.sort(key=lambda c: int(c[0]))
    return out


def neighbour_graph(
    embeddings: np.ndarray,
    n_neighbors: int,
    sigma: float,
    seed: int,
    *,
    exact_max: int = EXACT_KNN_MAX,
    cell_size: int = CELL_SIZE,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[np.ndarray] | None]:
    """The kNN facility-location graph over all candidates, and the cells it was built in.

    Exact (cells None) up to ``exact_max`` candidates, else an IVF graph: faiss k-means cells of at
    most ``cell_size`` points, exact neighbours within each cell, cells on a thread pool. Same CSR
    format as :func:`functions.knn_graph` (symmetrised, Gaussian weights, unit self-loops).
    """
    m = embeddings.shape[0]
    if m <= exact_max:
        return knn_graph(embeddings, n_neighbors, sigma), None
    cells = kmeans_cells(embeddings, cell_size, seed)
    # Cells run side by side on every core; multi-threaded BLAS inside each would only contend.
    with threadpool_limits(1, user_api="blas"):
        graph = knn_graph(embeddings, n_neighbors, sigma, blocks=cells, map_fn=thread_map)
    return graph, cells


@nb.njit(cache=True, nogil=True)
def _induced(
    indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, nodes: np.ndarray, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b = nodes.shape[0]
    for i in range(b):
        local[nodes[i]] = i
    out_ptr = np.zeros(b + 1, dtype=np.int64)
    for i in range(b):
        e = nodes[i]
        c = 0
        for p in range(indptr[e], indptr[e + 1]):
            if local[indices[p]] >= 0:
                c += 1
        out_ptr[i + 1] = out_ptr[i] + c
    cols = np.empty(out_ptr[b], dtype=np.int32)
    vals = np.empty(out_ptr[b], dtype=np.float32)
    for i in range(b):
        e = nodes[i]
        q = out_ptr[i]
        for p in range(indptr[e], indptr[e + 1]):
            j = local[indices[p]]
            if j >= 0:
                cols[q] = j
                vals[q] = weights[p]
                q += 1
    for i in range(b):
        local[nodes[i]] = -1
    return out_ptr, cols, vals


def induced_subgraph(
    graph: tuple[np.ndarray, np.ndarray, np.ndarray], nodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The subgraph on ``nodes`` (sorted), renumbered ``0..len(nodes)-1``; edges leaving it are dropped."""
    indptr, indices, weights = graph
    local = np.full(indptr.shape[0] - 1, -1, dtype=np.int64)
    return _induced(indptr, indices, weights, np.ascontiguousarray(nodes, dtype=np.int64), local)


def graph_rows(
    graph: tuple[np.ndarray, np.ndarray, np.ndarray], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR rows ``rows`` with their columns kept global: candidates ``rows``, ground set all nodes."""
    indptr, indices, weights = graph
    rows = np.asarray(rows, dtype=np.int64)
    counts = indptr[rows + 1] - indptr[rows]
    out_ptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=out_ptr[1:])
    pos = np.repeat(indptr[rows] - out_ptr[:-1], counts) + np.arange(out_ptr[-1])
    return out_ptr, indices[pos], weights[pos]

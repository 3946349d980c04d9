"""kNN indexes: the 10-NN graph of the store-path sketches by our IVF cells against faiss, hnswlib and
pynndescent, build + search time and recall@10."""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from scorer_service.submodular import kmeans_cells
from scorer_service.submodular.facility_location import _block_neighbours
from scorer_service.submodular.neighbours import thread_map
from trainers.benchmarks.selection_data import IMAGENET_N, N_NEIGHBORS, store_data
from trainers.benchmarks.selection_runs import spawn


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [np.intersect1d(f, t).shape[0] for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def worker_ann(spec: dict) -> dict:
    """Approximate 10-NN graphs of the store-path sketches: build + search time and recall@10.

    Recall is measured on 2,000 random rows against brute force. Our IVF graph (faiss k-means
    cells, exact search within each) is timed the same way: cells, search, no CSR.
    """
    emb, _ = store_data(spec["n"], spec["seed"])
    x = emb.astype(np.float32)
    n, kk = x.shape[0], N_NEIGHBORS
    rng = np.random.default_rng(0)
    probe = np.sort(rng.choice(n, 2000, replace=False))
    d2 = np.einsum("ij,ij->i", x, x)[None, :] - 2 * (x[probe] @ x.T)
    d2[np.arange(probe.shape[0]), probe] = np.inf
    truth = np.argpartition(d2, kk, axis=1)[:, :kk]
    del d2

    def drop_self(found: np.ndarray) -> np.ndarray:
        return np.array([[j for j in row if j != i][:kk] for i, row in zip(probe, found[probe], strict=True)])

    rows = []

    def timed(name: str, build) -> None:
        t0 = time.perf_counter()
        found = build()
        rows.append(
            {"index": name, "time_s": time.perf_counter() - t0, "recall": _recall(drop_self(found), truth)}
        )

    def ours() -> np.ndarray:
        cells = kmeans_cells(x, spec["cell"], 1)
        out = np.zeros((n, kk + 1), dtype=np.int64)
        with threadpool_limits(1, user_api="blas"):
            found = thread_map(lambda c: (c, _block_neighbours(x[c], kk, 1024)[0]), cells)
        for c, idx in found:
            out[c, 0] = c
            out[c, 1:] = c[idx]
        return out

    timed(f"ours: faiss k-means cells <= {spec['cell']}, exact sgemm search", ours)
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    nlist = int(np.sqrt(n))
    for nprobe in (1, 4, 8):

        def ivf(nprobe: int = nprobe) -> np.ndarray:
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1], nlist)
            index.train(x)
            index.add(x)
            index.nprobe = nprobe
            return index.search(x, kk + 1)[1]

        timed(f"faiss IndexIVFFlat nlist={nlist} nprobe={nprobe}", ivf)

    def hnsw() -> np.ndarray:
        index = faiss.IndexHNSWFlat(x.shape[1], 16)
        index.hnsw.efConstruction = 40
        index.add(x)
        index.hnsw.efSearch = 32
        return index.search(x, kk + 1)[1]

    timed("faiss IndexHNSWFlat M=16 efC=40 efS=32", hnsw)
    try:
        import hnswlib

        def hnswlib_graph() -> np.ndarray:
            index = hnswlib.Index(space="l2", dim=x.shape[1])
            index.init_index(max_elements=n, ef_construction=40, M=16, random_seed=1)
            index.set_num_threads(os.cpu_count() or 1)
            index.add_items(x)
            index.set_ef(32)
            return index.knn_query(x, k=kk + 1)[0].astype(np.int64)

        timed("hnswlib M=16 efC=40 ef=32", hnswlib_graph)
    except ImportError:
        rows.append({"index": "hnswlib", "skipped": "not installed (pip install hnswlib)"})
    try:
        import pynndescent

        pynndescent.NNDescent(x[:2000], n_neighbors=kk + 1, random_state=1).prepare()  # compile
        timed(
            "pynndescent n_neighbors=11",
            lambda: pynndescent.NNDescent(x, n_neighbors=kk + 1, random_state=1).neighbor_graph[0],
        )
    except ImportError:
        rows.append({"index": "pynndescent", "skipped": "not installed (pip install pynndescent)"})
    return {"rows": rows, "n": n, "load_avg": os.getloadavg()[0]}


def ann_section(args: argparse.Namespace) -> dict:
    """The 10-NN graph measurement at 50k rows (and at 640k without ``--quick``), one subprocess each."""
    sizes = [50_000] if args.quick else [50_000, IMAGENET_N // 2]
    print("\n# 10-NN graph of the store-path sketches (d = 32): build + search over all rows, recall@10")
    ann = []
    for n in sizes:
        res = spawn({"mode": "ann", "n": n, "seed": args.store_seed, "cell": 2048}, args.timeout)
        for r in res.get("rows", []):
            extra = r["skipped"] if "skipped" in r else f"{r['time_s']:8.2f} s  recall@10 {r['recall']:.3f}"
            print(f"{n:>8} {r['index']:<52} {extra}  load {res['load_avg']:.1f}", flush=True)
        if "error" in res:
            print(f"{n:>8} {res['error']}")
        ann.append(res)
    return {"ann": ann}

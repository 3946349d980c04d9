"""Diversity-selection benchmark: ours vs submodlib and apricot, the store's path, and kNN indexes.

    python -m trainers.benchmarks.selection [--quick] [--only libraries|store|ann] [--json PATH] [--reps N]

Library comparison (pure diversity G, no hardness term: neither library has a modular term), for
n in {10k, 50k} (``--quick``: 5k), k in {n/10, n/2}, on clustered Gaussian data (d = 64, 100 centres):

* dense FL: one float32 Gaussian kernel (sigma = mean pairwise distance) given to every library;
* kNN FL: one symmetrised exact 10-NN graph with Gaussian weights and unit self-loops (scipy CSR);
* feature-based: sqrt over the sketches' positive/negative parts, min-max scaled to [0, 1] per
  column (so submodlib's internal MinMaxScaler is the identity).

Each (library, optimizer, size) runs in a fresh subprocess: time is the median wall time of the
call from the in-memory numpy inputs to the selected indices (library object construction
included, structure building excluded); memory is that subprocess's peak RSS (VmHWM, which
includes the interpreter, the imports and the inputs) and the part above the RSS measured after
loading the inputs and one warm-up call on a tiny instance (the selection's own working memory).
The warm-up loads each library's imports and our compiled code before timing; apricot
re-compiles on every ``fit``, which is part of its cost. Runs of milliseconds are repeated for
up to a second. The libraries' stochastic greedy runs at epsilon 0.1 (apricot's own default of
0.9 makes its sample about 1 element at k >= n/10, i.e. a random subset); ours at 0.1 and at
0.01, a row each (a smaller epsilon only makes a library's stochastic run slower, so its fastest
run stays the bar).
The objective of every returned set is recomputed independently and reported relative to our
lazy greedy (exact greedy). Plus top-k (``np.argpartition``) and weighted sampling without
replacement (Gumbel-top-k) over 1.28M scores.

Store path: ``select_diverse`` as the store calls it -- float16 sketches (d = 32, 40 Gaussian
clusters of spread 0.15 to 1.2, seed 1913, which no test uses), DIH-like scores, lam = 1 -- at
n in {10k, 50k, 200k} (k = n/50, n/10) and at 1.28M in the store's shape (the candidates a random
half, keeping 0.4 of them), timed end to end (sigma, k-means cells, kNN graph or kernels,
selection), with the objective relative to one global lazy greedy on exact structures where that
fits (dense up to 50k: a 10 GB kernel; kNN up to 200k: an exact O(m^2) graph), and the ratio
``solve_diverse`` reports itself; every optimizer (``auto``, ``stochastic``, ``lazy-stochastic``,
``lazy``) up to 200k, ``auto`` and ``stochastic`` at 1.28M. At 50k also with flat scores (pure
diversity), against
apricot's fastest run on the same sketches (its input -- exact graph or scaled features -- built
for it, and timed separately; the fastest of as many repetitions as ours gets).

kNN indexes: the 10-NN graph of the store-path sketches at 50k and 640k rows by our IVF cells
(faiss k-means, exact sgemm search within each cell), faiss IVF-Flat and HNSW, hnswlib and
pynndescent (the last two only if installed): build + search time and recall@10 on 2,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from scorer_service.submodular import (
    OPTIMIZERS,
    FacilityLocation,
    FeatureBased,
    KNNFacilityLocation,
    Objective,
    kmeans_cells,
    knn_graph,
    lazy_greedy,
    mean_pairwise_distance,
    nonnegative_features,
    rescale_scores,
    select_diverse,
    solve_diverse,
)
from scorer_service.submodular.facility_location import DENSE_KERNEL_BYTES, _block_neighbours, gaussian_kernel
from scorer_service.submodular.neighbours import thread_map

FUNCS = ("dense", "knn", "feature")
LIBS = ("ours", "apricot", "submodlib")
MEMORY_LIMIT = 8 * 2**30
N_NEIGHBORS = 10
IMAGENET_N = 1_280_000


# ---------------------------------------------------------------- data and structures


def clustered(n: int, d: int, centres: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d)).astype(np.float32)
    label = rng.integers(0, centres, n)
    return c[label] + np.float32(0.7) * rng.normal(size=(n, d)).astype(np.float32), label


def prepare(n: int, folder: Path, seed: int) -> dict:
    """Build every structure once and save it; returns build times and sigma."""
    x, _ = clustered(n, 64, 100, seed)
    np.save(folder / "x.npy", x)
    sigma = mean_pairwise_distance(x, np.random.default_rng(seed))
    info = {"sigma": sigma}
    if 4 * n * n <= DENSE_KERNEL_BYTES:
        t = time.perf_counter()
        np.save(folder / "kernel.npy", gaussian_kernel(x, sigma))
        info["build_kernel_s"] = time.perf_counter() - t
    t = time.perf_counter()
    indptr, indices, weights = knn_graph(x, N_NEIGHBORS, sigma)
    info["build_knn_s"] = time.perf_counter() - t
    np.save(folder / "indptr.npy", indptr)
    np.save(folder / "indices.npy", indices)
    np.save(folder / "weights.npy", weights)
    t = time.perf_counter()
    f = nonnegative_features(x)
    lo, hi = f.min(axis=0), f.max(axis=0)
    f = (f - lo) / np.where(hi > lo, hi - lo, 1)
    info["build_features_s"] = time.perf_counter() - t
    np.save(folder / "features.npy", f.astype(np.float32))
    return info


def dense_fl_value(x: np.ndarray, sigma: float, subset: np.ndarray, chunk: int = 512) -> float:
    """Global dense FL value, kernel rows computed per chunk of S (never n^2 in memory)."""
    cover = np.zeros(x.shape[0], dtype=np.float32)
    sqn = np.einsum("ij,ij->i", x, x)
    xt = np.ascontiguousarray(x.T)
    for i in range(0, subset.shape[0], chunk):
        s = subset[i : i + chunk]
        d2 = sqn[s, None] + sqn[None, :] - 2 * (x[s] @ xt)
        np.maximum(cover, np.exp(-np.maximum(d2, 0) / (2 * sigma**2)).max(axis=0), out=cover)
    return float(cover.astype(np.float64).sum())


def objective(func: str, folder: Path, sigma: float, subset: np.ndarray) -> float:
    if func == "dense":
        if (folder / "kernel.npy").exists():
            return FacilityLocation(kernel=np.load(folder / "kernel.npy")).evaluate(subset)
        return dense_fl_value(np.load(folder / "x.npy"), sigma, subset)
    if func == "knn":
        graph = tuple(np.load(folder / f"{p}.npy") for p in ("indptr", "indices", "weights"))
        return KNNFacilityLocation(graph=graph).evaluate(subset)
    return FeatureBased(np.load(folder / "features.npy")).evaluate(subset)


def skip_reason(lib: str, func: str, n: int) -> str | None:
    if lib != "ours":
        try:
            __import__({"apricot": "apricot", "submodlib": "submodlib"}[lib])
        except ImportError as e:
            return (
                f"not installed ({e}); pip install {'apricot-select' if lib == 'apricot' else 'submodlib-py'}"
            )
    if func == "dense" and lib == "apricot" and 12 * n * n > MEMORY_LIMIT:
        return f"needs ~{12 * n * n / 2**30:.0f} GiB (float32 input + its float64 copy of the n^2 kernel)"
    if func == "dense" and lib == "submodlib" and 8 * n * n > MEMORY_LIMIT:
        return (
            f"needs ~{8 * n * n / 2**30:.0f} GiB (input + its vector<vector<float>> copy of the n^2 kernel)"
        )
    if func == "knn" and lib == "submodlib" and n > 10_000:
        return "sparse mode scans all n rows per gain (O(n log k)): minutes per run beyond n = 10k"
    return None


# ---------------------------------------------------------------- workers (one subprocess each)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_now_mib() -> float:
    return _status_mib("VmRSS")


def _peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
    return _status_mib("VmHWM")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load(func: str, folder: Path) -> dict:
    if func == "dense":
        path = folder / "kernel.npy"
        return {"kernel": np.load(path)} if path.exists() else {"x": np.load(folder / "x.npy")}
    if func == "knn":
        return {p: np.load(folder / f"{p}.npy") for p in ("indptr", "indices", "weights")}
    return {"features": np.load(folder / "features.npy")}


def _ours(func: str, opt: str, k: int, eps: float, data: dict, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if func == "dense" and "x" in data:
        # The kernel would exceed the cap: select_diverse partitions into k-means blocks.
        x = data["x"]
        return select_diverse(x, np.zeros(x.shape[0]), k, function="fl", optimizer=opt, epsilon=eps, rng=rng)
    if func == "dense":
        g = FacilityLocation(kernel=data["kernel"])
    elif func == "knn":
        g = KNNFacilityLocation(graph=(data["indptr"], data["indices"], data["weights"]))
    else:
        g = FeatureBased(data["features"])
    return OPTIMIZERS[opt](Objective(None, g), k, epsilon=eps, rng=rng)


def _apricot(func: str, opt: str, k: int, eps: float, data: dict, seed: int) -> np.ndarray:
    from apricot import FacilityLocationSelection, FeatureBasedSelection
    from scipy.sparse import csr_matrix

    kw = {"optimizer": opt, "random_state": seed}
    if opt == "stochastic":
        kw["optimizer_kwds"] = {"epsilon": eps}
    if func == "dense":
        sel = FacilityLocationSelection(k, metric="precomputed", **kw).fit(data["kernel"])
    elif func == "knn":
        n = data["indptr"].shape[0] - 1
        graph = csr_matrix((data["weights"], data["indices"], data["indptr"]), shape=(n, n))
        sel = FacilityLocationSelection(k, metric="precomputed", **kw).fit(graph)
    else:
        sel = FeatureBasedSelection(k, concave_func="sqrt", **kw).fit(data["features"])
    return np.asarray(sel.ranking, dtype=np.int64)


def _submodlib(func: str, opt: str, k: int, eps: float, data: dict, seed: int) -> np.ndarray:
    from scipy.sparse import csr_matrix
    from submodlib import FacilityLocationFunction, FeatureBasedFunction
    from submodlib_cpp import FeatureBased as CppFeatureBased

    if func == "dense":
        n = data["kernel"].shape[0]
        f = FacilityLocationFunction(n=n, mode="dense", sijs=data["kernel"], separate_rep=False)
    elif func == "knn":
        n = data["indptr"].shape[0] - 1
        graph = csr_matrix((data["weights"], data["indices"], data["indptr"]), shape=(n, n))
        f = FacilityLocationFunction(n=n, mode="sparse", sijs=graph, num_neighbors=N_NEIGHBORS)
    else:
        feats = data["features"]
        f = FeatureBasedFunction(
            n=feats.shape[0],
            features=feats.tolist(),
            numFeatures=feats.shape[1],
            sparse=False,
            mode=CppFeatureBased.squareRoot,
        )
    name = {"stochastic": "StochasticGreedy", "lazy": "LazyGreedy"}[opt]
    out = f.maximize(budget=k, optimizer=name, epsilon=eps, show_progress=False)
    return np.array([i for i, _ in out], dtype=np.int64)


RUNNERS = {"ours": _ours, "apricot": _apricot, "submodlib": _submodlib}


def _warm_inputs(func: str, data: dict) -> dict:
    # A tiny instance of the same kind, for the warm-up call.
    if "x" in data:
        return {"x": data["x"][:3000]}
    small = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    if func == "dense":
        return {"kernel": gaussian_kernel(small, 1.0)}
    if func == "knn":
        return dict(zip(("indptr", "indices", "weights"), knn_graph(small, N_NEIGHBORS, 1.0), strict=True))
    return {"features": small}


def worker_compare(spec: dict) -> dict:
    folder = Path(spec["folder"])
    data = _load(spec["func"], folder)
    run = RUNNERS[spec["lib"]]
    # Imports and compiled code load before the clock starts, for every library alike.
    run(spec["func"], spec["opt"], 8, spec["eps"], _warm_inputs(spec["func"], data), 0)
    base = _rss_now_mib()
    times, cpus = [], []
    # Runs of a few milliseconds are repeated for up to a second (at most 20 times): their
    # median is otherwise at the mercy of one scheduler hiccup.
    while len(times) < spec["reps"] or (sum(times) < 1.0 and len(times) < 20):
        c0, t0 = _cpu_s(), time.perf_counter()
        picked = run(spec["func"], spec["opt"], spec["k"], spec["eps"], data, spec["seed"] + len(times))
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu_s() - c0)
        if sum(times) > spec["rep_budget_s"]:
            break
    np.save(spec["out"], picked)
    return {"times": times, "cpu": cpus, "rss_peak_mib": _peak_rss_mib(), "rss_base_mib": base}


STORE_SIZES = (10_000, 50_000, 200_000, IMAGENET_N)
STORE_SEED = 1913
"""Seed of the store-path data; the tests use other seeds."""
REFERENCE_MAX = {"fl": 50_000, "fl-knn": 200_000, "feature": IMAGENET_N}
"""Largest ground set whose exact global lazy greedy is computed (dense: a 10 GB kernel at 50k;
kNN: an exact O(m^2) graph, about a minute at 200k)."""


def store_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Float16 sketches (d = 32) in 40 Gaussian clusters of spread 0.15-1.2, and DIH-like scores."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 32)).astype(np.float32) * 2
    spread = np.geomspace(0.15, 1.2, 40)[rng.permutation(40)].astype(np.float32)
    label = rng.integers(0, 40, n)
    noise = rng.normal(size=(n, 32)).astype(np.float32)
    emb = (centres[label] + spread[label, None] * noise).astype(np.float16)
    return emb, 10 + rng.gamma(2.0, 100.0, size=n)


def _reference_function(func: str, x: np.ndarray, sigma: float):
    if func == "fl":
        return FacilityLocation(kernel=gaussian_kernel(x, sigma))
    if func == "fl-knn":
        return KNNFacilityLocation(graph=knn_graph(x, N_NEIGHBORS, sigma))
    return FeatureBased(nonnegative_features(x))


def worker_store(spec: dict) -> dict:
    """``select_diverse`` on the store's path, timed from the sketches, against one global lazy greedy."""
    emb, scores = store_data(spec["n"], spec["seed"])
    m = spec["m"]
    if m < emb.shape[0]:
        cand = np.sort(np.random.default_rng(spec["seed"] + 1).choice(emb.shape[0], m, replace=False))
        emb, scores = emb[cand], scores[cand]
    func, seed = spec["func"], spec["seed"]
    select_diverse(emb[:20_000], scores[:20_000], 1000, function=func)  # compiled code, faiss
    x = emb.astype(np.float32)
    # select_diverse's sigma is the first draw of its rng: the reference objective uses the same.
    sigma = mean_pairwise_distance(x, np.random.default_rng(seed))
    g, ref_build_s = None, None
    if spec["reference"]:
        t0 = time.perf_counter()
        g = _reference_function(func, x, sigma)
        ref_build_s = time.perf_counter() - t0
    rows = []
    for kind in spec["scores"]:
        sc = scores if kind == "dih" else np.ones(m)
        for k in spec["ks"]:
            ref = f = None
            if g is not None:
                f = Objective(rescale_scores(sc), g, k / g.full_value())
                t0 = time.perf_counter()
                ref = f.evaluate(lazy_greedy(f, k))
                ref_s = time.perf_counter() - t0
            for opt in spec["optimizers"]:
                times = []
                for _ in range(spec["reps"]):
                    t0 = time.perf_counter()
                    pos = select_diverse(
                        emb, sc, k, function=func, optimizer=opt, rng=np.random.default_rng(seed)
                    )
                    times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                res = solve_diverse(emb, sc, k, function=func, optimizer=opt, rng=np.random.default_rng(seed))
                solve_s = time.perf_counter() - t0
                assert np.array_equal(res.positions, pos)
                row = {
                    "n": spec["n"],
                    "m": m,
                    "k": k,
                    "function": func,
                    "scores": kind,
                    "optimizer": opt if opt != "auto" else f"auto:{res.optimizer}",
                    "times": times,
                    "time_s": statistics.median(times),
                    "solve_s": solve_s,
                    "partitioning": res.partitioning,
                    "blocks": res.blocks,
                    "merged": res.merged,
                    "graph": res.graph,
                    "reported": res.relative_objective,
                    "estimated": res.relative_objective_estimated,
                    "load_avg": os.getloadavg()[0],
                }
                if ref is not None:
                    row |= {
                        "vs_global": f.evaluate(pos) / ref,
                        "ref_build_s": ref_build_s,
                        "ref_lazy_s": ref_s,
                    }
                rows.append(row)
    return {"rows": rows, "rss_peak_mib": _peak_rss_mib()}


def worker_apricot_store(spec: dict) -> dict:
    """apricot's fastest run on the store-path data (pure diversity), its input built for it."""
    emb, _ = store_data(spec["n"], spec["seed"])
    x = emb.astype(np.float32)
    sigma = mean_pairwise_distance(x, np.random.default_rng(spec["seed"]))
    t0 = time.perf_counter()
    if spec["func"] == "fl-knn":
        indptr, indices, weights = knn_graph(x, N_NEIGHBORS, sigma)
        data = {"indptr": indptr, "indices": indices, "weights": weights}
        func = "knn"
    else:
        f = nonnegative_features(x)
        lo, hi = f.min(axis=0), f.max(axis=0)
        data = {"features": ((f - lo) / np.where(hi > lo, hi - lo, 1)).astype(np.float32)}
        func = "feature"
    build_s = time.perf_counter() - t0
    _apricot(func, "lazy", 8, 0.1, _warm_inputs(func, data), 0)
    rows = []
    for k in spec["ks"]:
        for opt in ("stochastic", "lazy"):
            times = []
            for _ in range(spec["reps"]):
                t0 = time.perf_counter()
                _apricot(func, opt, k, 0.1, data, spec["seed"])
                times.append(time.perf_counter() - t0)
            # Its fastest of the repetitions: the bar ours is held to.
            rows.append({"k": k, "optimizer": opt, "time_s": min(times), "times": times})
    return {"rows": rows, "build_s": build_s, "load_avg": os.getloadavg()[0]}


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


def worker_primitives(spec: dict) -> dict:
    n = spec["n"]
    rng = np.random.default_rng(spec["seed"])
    scores = 10 + rng.gamma(2.0, 100.0, size=n)
    logw = np.log(scores)
    rows = []
    for frac in (0.2, 0.5):
        k = int(frac * n)
        top, gumbel = [], []
        for _ in range(spec["reps"]):
            t0 = time.perf_counter()
            np.argpartition(-scores, k - 1)[:k]
            top.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            np.argpartition(-(logw + rng.gumbel(size=n)), k - 1)[:k]
            gumbel.append(time.perf_counter() - t0)
        rows.append({"k": k, "topk_s": statistics.median(top), "gumbel_s": statistics.median(gumbel)})
    return {"rows": rows}


WORKERS = {
    "compare": worker_compare,
    "store": worker_store,
    "apricot_store": worker_apricot_store,
    "ann": worker_ann,
    "primitives": worker_primitives,
}


def spawn(spec: dict, timeout: float) -> dict:
    """Run one worker in a fresh interpreter; its peak RSS is then its own."""
    cmd = [sys.executable, "-m", "trainers.benchmarks.selection", "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:160]}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- driver


def compare(sizes: list[int], args: argparse.Namespace, root: Path) -> list[dict]:
    rows = []
    for n in sizes:
        folder = root / f"n{n}"
        folder.mkdir()
        print(f"\n# n = {n}: building structures ...", flush=True)
        info = prepare(n, folder, args.seed)
        built = ", ".join(f"{k_[6:-2]} {v:.2f} s" for k_, v in info.items() if k_.startswith("build_"))
        print(f"# built (ours, not timed below): {built}; sigma = {info['sigma']:.3f}", flush=True)
        for func in FUNCS:
            for k in (n // 10, n // 2):
                group = []
                for lib in LIBS:
                    eps_list = args.our_epsilon if lib == "ours" else [args.epsilon]
                    for opt, eps in [("stochastic", e) for e in eps_list] + [("lazy", None)]:
                        row = {"n": n, "k": k, "function": func, "library": lib, "optimizer": opt}
                        if eps is not None:
                            row["epsilon"] = eps
                        reason = skip_reason(lib, func, n)
                        if reason:
                            row["skipped"] = reason
                            group.append(row)
                            continue
                        out = folder / f"sel_{func}_{k}_{lib}_{opt}_{eps}.npy"
                        spec = {
                            "mode": "compare",
                            "folder": str(folder),
                            "lib": lib,
                            "func": func,
                            "opt": opt,
                            "k": k,
                            "eps": args.epsilon if eps is None else eps,
                            "reps": args.reps,
                            "rep_budget_s": args.rep_budget,
                            "seed": args.seed,
                            "out": str(out),
                        }
                        res = spawn(spec, args.timeout)
                        row.update(res)
                        if "error" not in res:
                            row["time_s"] = statistics.median(res["times"])
                            row["cpu_s"] = statistics.median(res["cpu"])
                            row["objective"] = objective(func, folder, info["sigma"], np.load(out))
                            if lib == "ours" and func == "dense" and not (folder / "kernel.npy").exists():
                                row["note"] = "partitioned (k-means blocks, merged); global objective"
                        group.append(row)
                ref = next((r for r in group if r["library"] == "ours" and r["optimizer"] == "lazy"), None)
                for r in group:
                    if ref and "objective" in r and "objective" in ref:
                        r["vs_ours_lazy_pct"] = 100 * (r["objective"] / ref["objective"] - 1)
                    print(format_row(r), flush=True)
                rows.extend(group)
    return rows


def _optimizer_label(r: dict) -> str:
    return f"{r['optimizer']} {r['epsilon']:g}" if "epsilon" in r else r["optimizer"]


def format_row(r: dict) -> str:
    head = f"{r['n']:>6} {r['k']:>6} {r['function']:<8} {r['library']:<10} {_optimizer_label(r):<15}"
    if "skipped" in r:
        return f"{head} skipped: {r['skipped']}"
    if "error" in r:
        return f"{head} {r['error']}"
    extra = r["rss_peak_mib"] - r["rss_base_mib"]
    rel = f"{r['vs_ours_lazy_pct']:+8.3f}%" if "vs_ours_lazy_pct" in r else "        "
    note = f"  {r['note']}" if "note" in r else ""
    return (
        f"{head} {r['time_s']:>9.3f} {r['cpu_s']:>8.2f} {len(r['times']):>4} {r['rss_peak_mib']:>9.0f} "
        f"{extra:>8.0f} {r['objective']:>12.2f} {rel}{note}"
    )


HEADER = (
    f"{'n':>6} {'k':>6} {'function':<8} {'library':<10} {'optimizer':<15} {'median s':>9} {'cpu s':>8} "
    f"{'reps':>4} {'peak MiB':>9} {'+sel MiB':>8} {'objective':>12} {'vs lazy':>9}"
)


def speedups(rows: list[dict]) -> list[dict]:
    """Ours against the fastest library run: stochastic vs any optimizer, and lazy vs lazy (exact)."""
    out = []
    keys = sorted({(r["n"], r["k"], r["function"]) for r in rows})
    for n, k, func in keys:
        grp = [r for r in rows if (r["n"], r["k"], r["function"]) == (n, k, func) and "time_s" in r]
        for ours in (r for r in grp if r["library"] == "ours"):
            lib_opts = ("stochastic", "lazy") if ours["optimizer"] == "stochastic" else ("lazy",)
            libs = [r for r in grp if r["library"] != "ours" and r["optimizer"] in lib_opts]
            if not libs:
                continue
            fastest = min(libs, key=lambda r: r["time_s"])
            out.append(
                {
                    "n": n,
                    "k": k,
                    "function": func,
                    "ours": _optimizer_label(ours),
                    "fastest_library": f"{fastest['library']} {_optimizer_label(fastest)}",
                    "speedup": fastest["time_s"] / ours["time_s"],
                    "objective_vs_it_pct": 100 * (ours["objective"] / fastest["objective"] - 1),
                }
            )
    return out


STORE_HEADER = (
    f"{'n':>8} {'m':>7} {'k':>7} {'function':<8} {'scores':<6} {'optimizer':<15} {'select s':>8} "
    f"{'+report s':>9} {'partitioning':<16} {'merged':<6} {'graph':<5} {'vs global':>9} {'reported':>10} "
    f"{'load':>5}"
)


def format_store_row(r: dict) -> str:
    vs = f"{100 * r['vs_global']:8.2f}%" if "vs_global" in r else f"{'-':>9}"
    rep = f"{100 * r['reported']:8.2f}%{'~' if r['estimated'] else ' '}"
    parts = f"{r['partitioning']} x{r['blocks']}"
    return (
        f"{r['n']:>8} {r['m']:>7} {r['k']:>7} {r['function']:<8} {r['scores']:<6} {r['optimizer']:<15} "
        f"{r['time_s']:>8.3f} {r['solve_s']:>9.3f} {parts:<16} {'yes' if r['merged'] else 'no':<6} "
        f"{r['graph'] or '-':<5} {vs} {rep} {r['load_avg']:>5.1f}"
    )


def store_path(args: argparse.Namespace, sizes: list[int]) -> tuple[list[dict], list[dict]]:
    """The store's call at each size, and apricot's fastest run at 50k (pure diversity)."""
    rows, apricot_rows = [], []
    for n in sizes:
        m, ks = (n // 2, [int(0.4 * (n // 2))]) if n >= IMAGENET_N else (n, [n // 50, n // 10])
        for func in ("fl", "fl-knn", "feature"):
            spec = {
                "mode": "store",
                "n": n,
                "m": m,
                "ks": ks,
                "func": func,
                "seed": args.store_seed,
                "reps": args.reps,
                # "auto" is the store's default; it runs lazy greedy or lazy-stochastic greedy.
                "optimizers": ["auto", "stochastic", "lazy-stochastic", "lazy"]
                if n <= 200_000
                else ["auto", "stochastic"],
                "scores": ["dih", "flat"] if n == 50_000 else ["dih"],
                "reference": m <= REFERENCE_MAX[func],
            }
            res = spawn(spec, args.timeout)
            if "error" in res:
                print(f"{n:>8} {m:>7} {func:<8} {res['error']}", flush=True)
                continue
            for r in res["rows"]:
                print(format_store_row(r), flush=True)
            if res["rows"] and "ref_build_s" in res["rows"][0]:
                lazies = ", ".join(f"{r['ref_lazy_s']:.1f}" for r in res["rows"][:: len(spec["optimizers"])])
                built = res["rows"][0]["ref_build_s"]
                print(f"# reference: exact structure {built:.1f} s, lazy greedy {lazies} s")
            rows.extend(res["rows"])
        if n == 50_000 and skip_reason("apricot", "knn", n) is None:
            for func in ("fl-knn", "feature"):
                spec = {
                    "mode": "apricot_store",
                    "n": n,
                    "func": func,
                    "ks": ks,
                    "seed": args.store_seed,
                    "reps": args.reps,
                }
                res = spawn(spec, args.timeout)
                if "error" in res:
                    print(f"# apricot {func}: {res['error']}", flush=True)
                    continue
                for r in res["rows"]:
                    r |= {"n": n, "function": func, "build_s": res["build_s"], "load_avg": res["load_avg"]}
                    print(
                        f"# apricot {func:<8} k={r['k']:>5} {r['optimizer']:<10} {r['time_s']:7.2f} s "
                        f"(+ {r['build_s']:.2f} s to build its input) load {r['load_avg']:.1f}",
                        flush=True,
                    )
                apricot_rows.extend(res["rows"])
    return rows, apricot_rows


def store_speedups(rows: list[dict], apricot_rows: list[dict]) -> list[dict]:
    """Our store-path time (pure diversity, graph included) against apricot's fastest run."""
    out = []
    for r in rows:
        if r["scores"] != "flat":
            continue
        libs = [a for a in apricot_rows if (a["function"], a["k"]) == (r["function"], r["k"])]
        if not libs:
            continue
        fastest = min(libs, key=lambda a: a["time_s"])
        out.append(
            {
                "function": r["function"],
                "k": r["k"],
                "optimizer": r["optimizer"],
                "apricot": fastest["optimizer"],
                "speedup": fastest["time_s"] / r["time_s"],
                "speedup_with_input": (fastest["time_s"] + fastest["build_s"]) / r["time_s"],
            }
        )
    return out


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"numpy": np.__version__, "python": platform.python_version()}
    for mod in ("numba", "faiss", "apricot", "submodlib"):
        try:
            from importlib.metadata import version

            dist = {"apricot": "apricot-select", "submodlib": "submodlib-py", "faiss": "faiss-cpu"}
            versions[mod] = version(dist.get(mod, mod))
        except Exception:
            versions[mod] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "load_avg": os.getloadavg(), "versions": versions}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 5k only, 1 rep, store path at n <= 128k")
    ap.add_argument(
        "--only",
        choices=("libraries", "store", "ann"),
        help="one part: the library comparison, the store path, or the kNN index measurement",
    )
    ap.add_argument("--json", type=Path, help="also write every number here")
    ap.add_argument("--reps", type=int, help="repetitions per run (default 3, quick 1)")
    ap.add_argument("--epsilon", type=float, default=0.1, help="epsilon of the libraries' stochastic greedy")
    ap.add_argument(
        "--our-epsilon",
        type=float,
        nargs="+",
        default=[0.1, 0.01],
        help="epsilons of our stochastic greedy in the library comparison (one row each)",
    )
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is killed")
    ap.add_argument(
        "--rep-budget", type=float, default=60.0, help="stop repeating a run after this many seconds"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the library-comparison data")
    ap.add_argument("--store-seed", type=int, default=STORE_SEED, help="seed of the store-path data")
    ap.add_argument(
        "--store-sizes", type=int, nargs="*", default=None, help="sizes of the store path (default: all)"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["mode"]](spec)))
        return
    args.reps = args.reps or (1 if args.quick else 3)
    info = machine()
    print(f"# {info['cpu']}, {info['cores']} cores, load average {info['load_avg']}; {info['versions']}")
    payload: dict = {"machine": info}
    if args.only in (None, "libraries"):
        payload |= libraries(args)
    if args.only in (None, "store"):
        payload |= store_section(args)
    if args.only in (None, "ann"):
        sizes = [50_000] if args.quick else [50_000, IMAGENET_N // 2]
        print("\n# 10-NN graph of the store-path sketches (d = 32): build + search over all rows, recall@10")
        payload["ann"] = []
        for n in sizes:
            res = spawn({"mode": "ann", "n": n, "seed": args.store_seed, "cell": 2048}, args.timeout)
            for r in res.get("rows", []):
                extra = (
                    r["skipped"] if "skipped" in r else f"{r['time_s']:8.2f} s  recall@10 {r['recall']:.3f}"
                )
                print(f"{n:>8} {r['index']:<52} {extra}  load {res['load_avg']:.1f}", flush=True)
            if "error" in res:
                print(f"{n:>8} {res['error']}")
            payload["ann"].append(res)
    info["load_avg_end"] = os.getloadavg()
    print(f"# load average at the end: {info['load_avg_end']}")
    if args.json:
        args.json.write_text(json.dumps(payload, indent=1, default=float))


def libraries(args: argparse.Namespace) -> dict:
    sizes = [5_000] if args.quick else [10_000, 50_000]
    ours_eps = ", ".join(map(str, args.our_epsilon))
    print(
        f"# stochastic greedy epsilon: libraries {args.epsilon}, ours {ours_eps}; "
        f"median of at least {args.reps} reps (fast runs repeated for up to 1 s)"
    )
    print(
        "# 'peak MiB' = peak RSS of the run's subprocess; "
        "'+sel MiB' = peak minus RSS after loading inputs and a warm-up call"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="selbench-") as tmp:
        rows = compare(sizes, args, Path(tmp))
    print(
        "\n# speed-up of ours over the fastest library run "
        "(target >= 20x at an objective no more than 0.5 % below it)"
    )
    ups = speedups(rows)
    for u in ups:
        print(
            f"{u['n']:>6} {u['k']:>6} {u['function']:<8} ours {u['ours']:<15} {u['speedup']:>8.1f}x vs "
            f"{u['fastest_library']:<26} objective {u['objective_vs_it_pct']:+.3f}% vs that run"
        )
    big = IMAGENET_N // 10 if args.quick else IMAGENET_N
    prim = spawn({"mode": "primitives", "n": big, "reps": 10, "seed": args.seed}, args.timeout)
    print(f"\n# top-k and weighted sampling without replacement over {big} scores (median of 10)")
    for p in prim.get("rows", []):
        top, gumbel = 1e3 * p["topk_s"], 1e3 * p["gumbel_s"]
        print(f"k = {p['k']:>7}: top-k (argpartition) {top:7.1f} ms, Gumbel-top-k {gumbel:7.1f} ms")
    if "error" in prim:
        print(prim["error"])
    return {
        "epsilon": args.epsilon,
        "our_epsilon": args.our_epsilon,
        "compare": rows,
        "speedups": ups,
        "primitives": prim,
    }


def store_section(args: argparse.Namespace) -> dict:
    sizes = args.store_sizes or ([10_000, 50_000, IMAGENET_N // 10] if args.quick else list(STORE_SIZES))
    print(
        "\n# select_diverse as the store calls it (lam = 1, epsilon 0.1), timed from the float16 sketches"
        "\n# (sigma, k-means cells, kNN graph or kernels, selection); '+report s': solve_diverse with its"
        "\n# relative-objective measurement. 'vs global': objective relative to one global lazy greedy on"
        "\n# exact structures; 'reported': solve_diverse's own ratio (~ = estimated on a sample)."
        f"\n# seed {args.store_seed}; m = n (k = n/50, n/10); at 1.28M the store's shape m = n/2, k = 0.4 m"
    )
    print(STORE_HEADER)
    rows, apricot_rows = store_path(args, sizes)
    ups = store_speedups(rows, apricot_rows)
    if ups:
        print("\n# store path (pure diversity, graph built) against apricot's fastest run at n = 50k")
    for u in ups:
        print(
            f"{u['function']:<8} k={u['k']:>5} ours {u['optimizer']:<10} {u['speedup']:6.1f}x vs apricot "
            f"{u['apricot']} ({u['speedup_with_input']:.1f}x counting the build of its input)"
        )
    return {"store": rows, "apricot_store": apricot_rows, "store_speedups": ups}


if __name__ == "__main__":
    main()

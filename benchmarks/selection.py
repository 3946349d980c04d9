"""Diversity-selection benchmark: ours vs submodlib and apricot, and the ImageNet-size rows.

    python -m benchmarks.selection [--quick] [--json PATH] [--reps N] [--timeout S]

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
lazy greedy (exact greedy).

ImageNet-size rows: n = 1.28M, d = 32 float16 sketches, 1000 classes, DIH-like scores; keep
0.4 of a random candidate set of 0.5n with ``select_diverse`` (hardness + diversity, stochastic
greedy, partitioned by class and by random blocks, the blocks on a thread pool; "class/ray": by
class, the blocks as Ray tasks on a local Ray, as the store actor runs them when CPUs are idle,
where "cpu s" and the peak RSS are the driver's only): time and peak RSS. Plus top-k
(``np.argpartition``) and weighted sampling without replacement (Gumbel-top-k) over 1.28M scores.
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
from functools import partial
from pathlib import Path

import numpy as np

from scorer_service.submodular import (
    OPTIMIZERS,
    FacilityLocation,
    FeatureBased,
    KNNFacilityLocation,
    Objective,
    knn_graph,
    mean_pairwise_distance,
    nonnegative_features,
    select_diverse,
)
from scorer_service.submodular.functions import DENSE_KERNEL_BYTES, gaussian_kernel

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
        # The kernel would exceed the cap: select_diverse partitions into random blocks.
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


def imagenet_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, 32)).astype(np.float32)
    label = rng.integers(0, 1000, n)
    emb = (centres[label] + np.float32(0.7) * rng.normal(size=(n, 32)).astype(np.float32)).astype(np.float16)
    scores = 10 + rng.gamma(2.0, 100.0, size=n)
    return emb, scores, label


def worker_imagenet(spec: dict) -> dict:
    emb, scores, label = imagenet_data(spec["n"], spec["seed"])
    rng = np.random.default_rng(spec["seed"])
    cand = np.sort(rng.choice(spec["n"], spec["n"] // 2, replace=False))
    e, s, y = emb[cand], scores[cand], label[cand]
    del emb, scores, label
    k = int(0.4 * cand.shape[0])
    parts = y if spec["parts"].startswith("class") else None
    map_fn = None
    if spec["parts"].endswith("/ray"):
        # The store actor's way: blocks as Ray tasks, one per idle CPU of a local Ray.
        from benchmarks.report import start_local_ray
        from scorer_service.ray.block_tasks import ray_block_map

        start_local_ray("selection-bench")
        # Forced onto tasks: by default they need more idle CPUs than this node has cores.
        map_fn = partial(ray_block_map, min_free_cpus=2)
    select_diverse(
        e[:5000],
        s[:5000],
        500,
        function=spec["func"],
        partitions=None if parts is None else parts[:5000],
        map_fn=map_fn,
    )
    base = _rss_now_mib()
    times, cpus = [], []
    for rep in range(spec["reps"]):
        c0, t0 = _cpu_s(), time.perf_counter()
        out = select_diverse(
            e,
            s,
            k,
            function=spec["func"],
            epsilon=spec["eps"],
            partitions=parts,
            rng=np.random.default_rng(rep),
            map_fn=map_fn,
        )
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu_s() - c0)
    assert out.shape == (k,) and np.unique(out).shape == (k,)
    return {
        "times": times,
        "cpu": cpus,
        "rss_peak_mib": _peak_rss_mib(),
        "rss_base_mib": base,
        "m": int(cand.shape[0]),
        "k": k,
    }


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


WORKERS = {"compare": worker_compare, "imagenet": worker_imagenet, "primitives": worker_primitives}


def spawn(spec: dict, timeout: float) -> dict:
    """Run one worker in a fresh interpreter; its peak RSS is then its own."""
    cmd = [sys.executable, "-m", "benchmarks.selection", "--worker", json.dumps(spec)]
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
                                row["note"] = "partitioned (random blocks of 2048); global objective"
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


BIG_HEADER = (
    f"{'n':>8} {'m':>7} {'k':>7} {'function':<8} {'blocks':<9} {'median s':>9} {'cpu s':>8} {'peak MiB':>9}"
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


def imagenet(args: argparse.Namespace, n: int) -> tuple[list[dict], dict]:
    rows = []
    for func in ("feature", "fl-knn", "fl"):
        for parts in ("class", "random", "class/ray"):
            spec = {
                "mode": "imagenet",
                "n": n,
                "func": func,
                "parts": parts,
                "reps": args.reps,
                "eps": args.our_epsilon[0],
                "seed": args.seed,
            }
            res = spawn(spec, args.timeout)
            row = {"n": n, "function": func, "blocks": parts, **res}
            if "error" not in res:
                row["time_s"] = statistics.median(res["times"])
                row["cpu_s"] = statistics.median(res["cpu"])
                print(
                    f"{n:>8} {row['m']:>7} {row['k']:>7} {func:<8} {parts:<9} {row['time_s']:>9.2f} "
                    f"{row['cpu_s']:>8.2f} {row['rss_peak_mib']:>9.0f}",
                    flush=True,
                )
            else:
                print(f"{n:>8} {func:<8} {parts:<9} {res['error']}", flush=True)
            rows.append(row)
    prim = spawn({"mode": "primitives", "n": n, "reps": 10, "seed": args.seed}, args.timeout)
    return rows, prim


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"numpy": np.__version__, "python": platform.python_version()}
    for mod in ("numba", "apricot", "submodlib"):
        try:
            from importlib.metadata import version

            versions[mod] = version({"apricot": "apricot-select", "submodlib": "submodlib-py"}.get(mod, mod))
        except Exception:
            versions[mod] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "load_avg": os.getloadavg(), "versions": versions}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 5k only, 1 rep, ImageNet rows at n = 128k")
    ap.add_argument("--json", type=Path, help="also write every number here")
    ap.add_argument("--reps", type=int, help="repetitions per run (default 3, quick 1)")
    ap.add_argument("--epsilon", type=float, default=0.1, help="epsilon of the libraries' stochastic greedy")
    ap.add_argument(
        "--our-epsilon",
        type=float,
        nargs="+",
        default=[0.1, 0.01],
        help="epsilons of our stochastic greedy (one row each; the first is used for the ImageNet rows)",
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before a run is killed")
    ap.add_argument(
        "--rep-budget", type=float, default=60.0, help="stop repeating a run after this many seconds"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["mode"]](spec)))
        return
    args.reps = args.reps or (1 if args.quick else 3)
    sizes = [5_000] if args.quick else [10_000, 50_000]
    big = IMAGENET_N // 10 if args.quick else IMAGENET_N
    info = machine()
    print(f"# {info['cpu']}, {info['cores']} cores, load average {info['load_avg']}; {info['versions']}")
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
    print("\n# ImageNet size: keep 0.4 of a random 0.5n candidate set with select_diverse")
    print(
        f"# (lam = 1, stochastic greedy, epsilon {args.our_epsilon[0]}); "
        "'peak MiB' includes the 1.28M-row data"
    )
    print(BIG_HEADER)
    big_rows, prim = imagenet(args, big)
    print(f"\n# top-k and weighted sampling without replacement over {big} scores (median of 10)")
    for p in prim.get("rows", []):
        top, gumbel = 1e3 * p["topk_s"], 1e3 * p["gumbel_s"]
        print(f"k = {p['k']:>7}: top-k (argpartition) {top:7.1f} ms, Gumbel-top-k {gumbel:7.1f} ms")
    if "error" in prim:
        print(prim["error"])
    info["load_avg_end"] = os.getloadavg()
    print(f"# load average at the end: {info['load_avg_end']}")
    if args.json:
        payload = {
            "machine": info,
            "epsilon": args.epsilon,
            "our_epsilon": args.our_epsilon,
            "compare": rows,
            "speedups": ups,
            "imagenet": big_rows,
            "primitives": prim,
        }
        args.json.write_text(json.dumps(payload, indent=1, default=float))


if __name__ == "__main__":
    main()

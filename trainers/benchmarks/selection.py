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
from pathlib import Path

import numpy as np

from trainers.benchmarks.selection_ann import ann_section, worker_ann
from trainers.benchmarks.selection_data import STORE_SEED
from trainers.benchmarks.selection_libraries import libraries, worker_compare, worker_primitives
from trainers.benchmarks.selection_store import store_section, worker_apricot_store, worker_store

WORKERS = {
    "compare": worker_compare,
    "store": worker_store,
    "apricot_store": worker_apricot_store,
    "ann": worker_ann,
    "primitives": worker_primitives,
}


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
        payload |= ann_section(args)
    info["load_avg_end"] = os.getloadavg()
    print(f"# load average at the end: {info['load_avg_end']}")
    if args.json:
        args.json.write_text(json.dumps(payload, indent=1, default=float))


if __name__ == "__main__":
    main()

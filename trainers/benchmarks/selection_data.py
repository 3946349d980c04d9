"""The selection benchmark's data: clustered Gaussian points for the library comparison, float16
sketches for the store path, the structures built from them, and the objective of a returned set."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from scorer_service.submodular import (
    FacilityLocation,
    FeatureBased,
    KNNFacilityLocation,
    knn_graph,
    mean_pairwise_distance,
    nonnegative_features,
)
from scorer_service.submodular.facility_location import DENSE_KERNEL_BYTES, gaussian_kernel

N_NEIGHBORS = 10
IMAGENET_N = 1_280_000

STORE_SEED = 1913
"""Seed of the store-path data; the tests use other seeds."""


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


def load_inputs(func: str, folder: Path) -> dict:
    if func == "dense":
        path = folder / "kernel.npy"
        return {"kernel": np.load(path)} if path.exists() else {"x": np.load(folder / "x.npy")}
    if func == "knn":
        return {p: np.load(folder / f"{p}.npy") for p in ("indptr", "indices", "weights")}
    return {"features": np.load(folder / "features.npy")}


def store_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Float16 sketches (d = 32) in 40 Gaussian clusters of spread 0.15-1.2, and DIH-like scores."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 32)).astype(np.float32) * 2
    spread = np.geomspace(0.15, 1.2, 40)[rng.permutation(40)].astype(np.float32)
    label = rng.integers(0, 40, n)
    noise = rng.normal(size=(n, 32)).astype(np.float32)
    emb = (centres[label] + spread[label, None] * noise).astype(np.float16)
    return emb, 10 + rng.gamma(2.0, 100.0, size=n)

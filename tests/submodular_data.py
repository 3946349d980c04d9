"""Point clouds and functions the submodular tests share."""

from __future__ import annotations

import itertools

import numpy as np

from scorer_service.submodular import (
    FacilityLocation,
    FeatureBased,
    KNNFacilityLocation,
    Modular,
    Objective,
    nonnegative_features,
)


def clustered_with_labels(
    rng: np.random.Generator, n: int, d: int = 6, centres: int = 4, spread: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    c = rng.normal(size=(centres, d)) * 3
    label = rng.integers(0, centres, n)
    return (c[label] + spread * rng.normal(size=(n, d))).astype(np.float32), label


def clustered(
    rng: np.random.Generator, n: int, d: int = 6, centres: int = 4, spread: float = 0.3
) -> np.ndarray:
    return clustered_with_labels(rng, n, d, centres, spread)[0]


def make_function(name: str, x: np.ndarray):
    if name == "fl":
        return FacilityLocation(x, rng=np.random.default_rng(0))
    if name == "fl-knn":
        return KNNFacilityLocation(x, n_neighbors=3, rng=np.random.default_rng(0))
    if name == "feature":
        return FeatureBased(nonnegative_features(x))
    if name == "feature-log":
        return FeatureBased(nonnegative_features(x), concave="log")
    return Modular(x.shape[0])


ALL = ["fl", "fl-knn", "feature", "feature-log", "modular"]


def brute_force_opt(f: Objective, k: int) -> float:
    return max(f.evaluate(np.array(s)) for s in itertools.combinations(range(f.n), k))


def planted_clusters(
    seed: int, m: int = 6000, d: int = 8, centres: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    # Clusters of very different spread (0.1 to 1.0 around centres ~3 apart) and DIH-like scores.
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d)) * 3
    spread = np.geomspace(0.1, 1.0, centres)
    label = rng.integers(0, centres, m)
    x = (c[label] + spread[label, None] * rng.normal(size=(m, d))).astype(np.float32)
    return x, 10 + rng.gamma(2.0, 100.0, m)

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

The interface and the compiled kernels are in ``setfunction``; the functions in
``facility_location`` and ``feature_based``; this module names them (:data:`FUNCTIONS`).
"""

from __future__ import annotations

import numpy as np

from scorer_service.submodular.facility_location import (
    FacilityLocation,
    KNNFacilityLocation,
    gaussian_kernel,
    knn_graph,
    mean_pairwise_distance,
)
from scorer_service.submodular.feature_based import FeatureBased, feature_scale, nonnegative_features
from scorer_service.submodular.setfunction import (
    CONCAVE,
    DENSE_KERNEL_BYTES,
    FEATURE,
    FL_DENSE,
    FL_SPARSE,
    MODULAR,
    Modular,
    Objective,
    SetFunction,
    dense_gains4,
    diversity_gain,
    diversity_update,
)

__all__ = [
    "CONCAVE",
    "DENSE_KERNEL_BYTES",
    "FEATURE",
    "FL_DENSE",
    "FL_SPARSE",
    "FUNCTIONS",
    "MODULAR",
    "FacilityLocation",
    "FeatureBased",
    "KNNFacilityLocation",
    "Modular",
    "Objective",
    "SetFunction",
    "dense_gains4",
    "diversity_gain",
    "diversity_update",
    "feature_scale",
    "gaussian_kernel",
    "knn_graph",
    "mean_pairwise_distance",
    "nonnegative_features",
]


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

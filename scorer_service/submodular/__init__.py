"""Submodular diversity selection: keep k candidates maximizing ``sum(hardness) + lambda * G(S)``.

DIHCL Eq. 3 (Zhou, Wang & Bilmes, NeurIPS 2020), DoCL Eq. 15 and MCL's "hard and diverse" subsets,
solved by stochastic greedy (Mirzasoleiman et al., AAAI 2015) or exact lazy greedy. Pure numpy and
numba: no Ray here. Partitions run on a thread pool unless the caller passes another ``map_fn``.

* ``functions`` -- set functions with memoized gains (dense and kNN facility location, feature-based)
* ``optimizers`` -- naive, lazy and stochastic greedy
* ``partition`` -- blocks by label or at random, proportional budgets, optional GreeDi merge round
* ``diverse`` -- :func:`select_diverse`, the entry point the store calls
"""

from __future__ import annotations

from scorer_service.submodular.diverse import (
    BLOCK_SIZE,
    PARTITION_ABOVE,
    rescale_scores,
    select_diverse,
)
from scorer_service.submodular.functions import (
    FUNCTIONS,
    FacilityLocation,
    FeatureBased,
    KNNFacilityLocation,
    Modular,
    Objective,
    SetFunction,
    knn_graph,
    mean_pairwise_distance,
    nonnegative_features,
)
from scorer_service.submodular.optimizers import (
    OPTIMIZERS,
    lazy_greedy,
    naive_greedy,
    stochastic_greedy,
)
from scorer_service.submodular.partition import (
    BlockProblem,
    MapFn,
    build_objective,
    make_blocks,
    partitioned_select,
    proportional_budgets,
    solve_block,
)

__all__ = [
    "BLOCK_SIZE",
    "BlockProblem",
    "FUNCTIONS",
    "OPTIMIZERS",
    "PARTITION_ABOVE",
    "FacilityLocation",
    "MapFn",
    "FeatureBased",
    "KNNFacilityLocation",
    "Modular",
    "Objective",
    "SetFunction",
    "build_objective",
    "knn_graph",
    "lazy_greedy",
    "make_blocks",
    "mean_pairwise_distance",
    "naive_greedy",
    "nonnegative_features",
    "partitioned_select",
    "proportional_budgets",
    "rescale_scores",
    "select_diverse",
    "solve_block",
    "stochastic_greedy",
]

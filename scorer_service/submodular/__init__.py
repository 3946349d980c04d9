"""Submodular diversity selection: keep k candidates maximizing ``sum(hardness) + lambda * G(S)``.

DIHCL Eq. 3 (Zhou, Wang & Bilmes, NeurIPS 2020), DoCL Eq. 15 and MCL's "hard and diverse" subsets,
solved by stochastic greedy (Mirzasoleiman et al., AAAI 2015), with or without a probe of lazy
greedy's heap, or exact lazy greedy. Pure numpy, numba and faiss: no Ray here. Partitions run on
a thread pool unless the caller passes another ``map_fn``.

* ``functions`` -- set functions with memoized gains (dense and kNN facility location, feature-based)
* ``optimizers`` -- naive, lazy, stochastic and lazy-stochastic greedy
* ``neighbours`` -- faiss k-means cells and the approximate (IVF) kNN graph built on them
* ``partition`` -- blocks by label or k-means cell, proportional budgets, GreeDi merge round
* ``diverse`` -- :func:`solve_diverse` (pick and report) and :func:`select_diverse` (the pick alone)
"""

from __future__ import annotations

from scorer_service.submodular.diverse import (
    MEMORY_BUDGET_BYTES,
    REFERENCE_SIZE,
    DiverseResult,
    rescale_scores,
    select_diverse,
    solve_diverse,
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
from scorer_service.submodular.ground_set import GroundSet, build_ground_set
from scorer_service.submodular.neighbours import kmeans_cells, neighbour_graph
from scorer_service.submodular.optimizers import (
    OPTIMIZER_CHOICES,
    OPTIMIZERS,
    choose_optimizer,
    lazy_greedy,
    lazy_stochastic_greedy,
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
    "BlockProblem",
    "DiverseResult",
    "FUNCTIONS",
    "MEMORY_BUDGET_BYTES",
    "OPTIMIZERS",
    "OPTIMIZER_CHOICES",
    "REFERENCE_SIZE",
    "FacilityLocation",
    "FeatureBased",
    "GroundSet",
    "KNNFacilityLocation",
    "MapFn",
    "Modular",
    "Objective",
    "SetFunction",
    "build_ground_set",
    "build_objective",
    "choose_optimizer",
    "kmeans_cells",
    "knn_graph",
    "lazy_greedy",
    "lazy_stochastic_greedy",
    "make_blocks",
    "mean_pairwise_distance",
    "naive_greedy",
    "neighbour_graph",
    "nonnegative_features",
    "partitioned_select",
    "proportional_budgets",
    "rescale_scores",
    "select_diverse",
    "solve_block",
    "solve_diverse",
    "stochastic_greedy",
]

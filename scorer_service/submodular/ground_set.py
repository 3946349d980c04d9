"""The diversity objective over all candidates, built once and shared by the blocks and the merge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from scorer_service.submodular.functions import (
    FUNCTIONS,
    FeatureBased,
    feature_scale,
    knn_graph,
    nonnegative_features,
)
from scorer_service.submodular.neighbours import neighbour_graph, thread_map

N_NEIGHBORS = 10


@dataclass(frozen=True)
class GroundSet:
    """The objective over all m candidates, shared by the blocks and the merge round.

    ``weight`` is ``lam * k / G(V)``. The kNN graph (``graph``; exact, or exact within each of
    ``graph_cells``) and the features exist over all candidates; the dense kernel never does.
    """

    function: str
    embeddings: np.ndarray
    modular: np.ndarray
    weight: float
    sigma: float
    graph: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    graph_cells: list[np.ndarray] | None = None
    features: np.ndarray | None = None

    @property
    def m(self) -> int:
        return self.modular.shape[0]

    @property
    def graph_kind(self) -> str | None:
        """How the kNN graph was built: "exact", "ivf" (within cells), or None without one."""
        if self.graph is None:
            return None
        return "exact" if self.graph_cells is None else "ivf"


def build_ground_set(
    function: str,
    embeddings: np.ndarray,
    modular: np.ndarray,
    k: int,
    lam: float,
    *,
    sigma: float,
    seed: int,
    graph_cells: list[np.ndarray] | None = None,
) -> GroundSet:
    """The :class:`GroundSet` of ``function`` on these candidates.

    The kNN graph comes from :func:`neighbours.neighbour_graph` (exact for small m, IVF cells
    above), or is exact within the given ``graph_cells`` (one cell: the exact graph).
    """
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; expected one of {', '.join(sorted(FUNCTIONS))}")
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    m = x.shape[0]
    graph = features = None
    if function == "fl-knn":
        if graph_cells is None:
            graph, graph_cells = neighbour_graph(x, N_NEIGHBORS, sigma, seed)
        elif len(graph_cells) == 1:
            graph, graph_cells = knn_graph(x, N_NEIGHBORS, sigma), None
        else:
            with threadpool_limits(1, user_api="blas"):
                graph = knn_graph(x, N_NEIGHBORS, sigma, blocks=graph_cells, map_fn=thread_map)
        # Unit self-loops and weights <= 1: every element covers itself fully, G(V) = m.
        full = float(m)
    elif function in ("feature", "feature-log"):
        features = nonnegative_features(x, feature_scale(x))
        full = FeatureBased(features, concave=concave_of(function)).full_value()
    else:
        full = float(m)
    weight = lam * k / full if full > 0 else 0.0
    cells = graph_cells if graph is not None else None
    return GroundSet(function, x, modular, weight, sigma, graph, cells, features)


def concave_of(function: str) -> str:
    return "log" if function == "feature-log" else "sqrt"

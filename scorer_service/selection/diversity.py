"""The diversity term (DIHCL Eq. 3): keep part of a selector's pick by hardness + lambda_c * G(S).

One place for its settings and its weight schedule ``lambda_c = lambda * decay**(cycle - 1)``,
used both after any selector (the store) and inside MCL's own selection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scorer_service.submodular import DiverseResult, solve_diverse


@dataclass(frozen=True)
class DiversityTerm:
    """``function``: "none" or a submodular function name (``submodular.FUNCTIONS``)."""

    function: str = "none"
    keep: float = 0.4
    lam: float = 1.0
    decay: float = 0.8
    optimizer: str = "auto"
    epsilon: float = 0.1
    # Candidates sampled to estimate the pick's objective against one global solve (0: no estimate).
    report_size: int = 8192

    @property
    def enabled(self) -> bool:
        return self.function != "none"

    def function_or(self, default: str) -> str:
        return self.function if self.enabled else default

    def weight(self, cycle: int) -> float:
        """lambda_c of selection cycle ``cycle`` (1-based)."""
        return self.lam * self.decay ** (cycle - 1)

    def kept(self, picked: int, world_size: int) -> int:
        """How many of a pick of ``picked`` samples the term keeps: at least one per rank."""
        return min(picked, max(world_size, round(self.keep * picked)))

    def select(
        self,
        embeddings: np.ndarray,
        scores: np.ndarray,
        k: int,
        cycle: int,
        rng: np.random.Generator,
        map_fn: Callable | None = None,
        *,
        function: str | None = None,
    ) -> DiverseResult:
        """The ``k`` candidates maximizing ``sum(rescaled scores) + lambda_c * G``, and how they were
        found."""
        return solve_diverse(
            embeddings,
            scores,
            k,
            function=function or self.function,
            lam=self.weight(cycle),
            optimizer=self.optimizer,
            epsilon=self.epsilon,
            rng=rng,
            map_fn=map_fn,
            reference_size=self.report_size,
        )

    @staticmethod
    def details(result: DiverseResult) -> dict[str, Any]:
        """What a round records about its diversity step (REST ``/rounds``, the dashboard)."""
        return {
            "diversity_partitioning": result.partitioning,
            "diversity_blocks": result.blocks,
            "diversity_merged": result.merged,
            "diversity_graph": result.graph,
            "diversity_optimizer": result.optimizer,
            "diversity_relative_objective": result.relative_objective,
            "diversity_relative_objective_estimated": result.relative_objective_estimated,
        }

"""Round planning: each round's subset selected once, cached, and cut into equal rank shards.

Warm-start rounds (and DoCL's full-pass rounds) train on everything; every other round asks the
run's selector for its budget, optionally refined by the diversity term. Selection is seeded by
(seed, round), so a rewound store selects a round again exactly as before. Selecting only reads the
state; adopting the selection (its record, the importance weights) is a separate, short change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scorer_service.core import label_noise
from scorer_service.core.rounds import RoundRecord, shard
from scorer_service.core.state import SampleState
from scorer_service.selection.diversity import DiversityTerm
from scorer_service.selection.registry import SelectionContext, SelectorSpec
from scorer_service.selection.schedule import Budget, Cycles

HISTOGRAM_BINS = 20


@dataclass(frozen=True)
class Chosen:
    """A round's selection before it is adopted: its record, and importance weights (ids, weights)."""

    record: RoundRecord
    importance: tuple[np.ndarray, np.ndarray] | None
    # Every sample's label-noise probability, refit from the state the selection read.
    noise: np.ndarray


class RoundPlanner:
    """The rounds of one run: what each selected and its shards for any world size."""

    def __init__(
        self,
        spec: SelectorSpec,
        *,
        n: int,
        cycles: Cycles,
        budget: Budget,
        diversity: DiversityTerm,
        seed: int,
        params: dict[str, Any],
        full_pass_each_cycle: bool = False,
        block_map: Callable | None = None,
        denoise: float | None = None,
    ) -> None:
        self.spec, self.n, self.cycles, self.budget = spec, n, cycles, budget
        self.diversity, self.seed, self.params = diversity, seed, params
        self.full_pass_each_cycle = full_pass_each_cycle
        self.block_map = block_map
        # The noise threshold above which likely mislabeled samples leave the candidate pool (None: off).
        self.denoise = denoise
        self.rounds: dict[int, RoundRecord] = {}

    def change(self, round_: int, world_size: int) -> str | None:
        """What serving ``(round_, world_size)`` changes: "select", "world" (a re-shard) or nothing."""
        rec = self.rounds.get(round_)
        if rec is None:
            return "select"
        return "world" if rec.world_size != world_size else None

    def select(self, state: SampleState, round_: int, world_size: int) -> Chosen:
        """Select round ``round_`` from ``state`` without changing anything (:meth:`shard` adopts it)."""
        t0 = time.perf_counter()
        cycle = self.cycles.selection_cycle(round_)
        rng = np.random.default_rng([self.seed, round_])
        importance = None
        noise = label_noise.noise_probability(state.loss_mean, state.seen)
        details: dict[str, Any] = {}
        first_of_cycle = round_ == self.cycles.bounds(self.cycles.cycle_of(round_))[0]
        if cycle == 0 or (self.full_pass_each_cycle and first_of_cycle):
            selected, name, k = self._warm_order(round_, rng), "all", self.n
        else:
            k = max(world_size, self.budget.size(cycle, self.n))
            pool = self._pool(state, noise, details)
            view = state if pool is None else state.take(pool)
            k = min(k, view.n)
            ctx = SelectionContext(view, cycle, rng, self.params, self.diversity, self.block_map)
            sel = self.spec.select(ctx, k)
            selected, name = (sel.ids if pool is None else pool[sel.ids]), self.spec.name
            details |= sel.details
            if sel.importance is not None:
                importance = (selected, sel.importance)
            if self.diversity.enabled and not self.spec.diversifies:
                selected = self._diversify(state, selected, cycle, rng, world_size, details)
                name = f"{self.spec.name}+{self.diversity.function}"
        ms = (time.perf_counter() - t0) * 1e3
        counts, edges = np.histogram(state.dih, bins=HISTOGRAM_BINS)
        hist = {"counts": counts.tolist(), "edges": edges.tolist()}
        record = RoundRecord(
            round_,
            cycle,
            name,
            k,
            np.asarray(selected, np.int64),
            world_size,
            ms,
            dih_histogram=hist,
            details=details,
        )
        return Chosen(record, importance, noise)

    def shard(
        self, state: SampleState, round_: int, rank: int, world_size: int, chosen: Chosen | None = None
    ) -> np.ndarray:
        """Rank ``rank``'s shard of round ``round_``, adopting the round's selection ``chosen`` (from
        :meth:`select`) when it is new: its record, and the importance weights of its samples."""
        if chosen is not None:
            state.noise[:] = chosen.noise
            state.importance[:] = 1.0
            if chosen.importance is not None:
                state.importance[chosen.importance[0]] = chosen.importance[1]
            self.rounds[round_] = chosen.record
        # A different world size (elastic training) re-shards the same selection.
        rec = self.rounds[round_]
        rec.world_size = world_size
        return shard(rec.ids, rank, world_size)

    def copy_rounds(self) -> dict[int, RoundRecord]:
        """The rounds as they are now, for a snapshot written while the store goes on (selections are
        never changed in place, so they are shared)."""
        return {r: replace(rec, metrics=dict(rec.metrics)) for r, rec in self.rounds.items()}

    def count_ingested(self, round_: int, samples: int) -> None:
        if round_ in self.rounds:
            self.rounds[round_].ingested += samples

    def _pool(self, state: SampleState, noise: np.ndarray, details: dict[str, Any]) -> np.ndarray | None:
        """The candidates when denoising: every sample but the likely mislabeled ones (None: all)."""
        if self.denoise is None:
            return None
        out = label_noise.suspects(noise, state.last_correct, self.denoise)
        count = int(out.sum())
        # Never fewer candidates than half the data: a mixture fitted to a degenerate loss spread
        # must not starve the selector.
        applied = 0 < count <= state.n // 2
        details["noise_suspects"] = count
        details["noise_excluded_share"] = count / state.n if applied else 0.0
        return np.flatnonzero(~out) if applied else None

    def _diversify(
        self,
        state: SampleState,
        ids: np.ndarray,
        cycle: int,
        rng: np.random.Generator,
        world_size: int,
        details: dict[str, Any],
    ) -> np.ndarray:
        """Keep the diversity term's share of the selector's pick (DIHCL Eq. 3)."""
        hardness = state.metric(self.spec.score)[ids]
        if self.spec.prefers_low:
            hardness = -hardness
        hardness = np.nan_to_num(hardness, nan=0.0)
        keep = self.diversity.kept(len(ids), world_size)
        result = self.diversity.select(state.embedding[ids], hardness, keep, cycle, rng, self.block_map)
        details |= self.diversity.details(result)
        return ids[result.positions]

    def _warm_order(self, round_: int, rng: np.random.Generator) -> np.ndarray:
        """A fresh permutation of all samples, led by those trimmed from the previous round.

        Equal shards drop ``n mod world_size`` samples per round; putting last round's dropped
        samples first guarantees every sample is trained on during a warm start of >= 2 rounds.
        """
        order = rng.permutation(self.n)
        prev = self.rounds.get(round_ - 1)
        if prev is None:
            return order
        dropped = prev.selected[len(prev.ids) :]
        keep = np.ones(self.n, dtype=bool)
        keep[dropped] = False
        return np.concatenate([dropped, order[keep[order]]])

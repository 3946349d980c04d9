"""One shard's side of one round's selection: the steps :mod:`.protocol` asks of every shard.

A session lives from ``open`` to the adoption of the round. It computes the selector's statistics
over the shard's samples, then every sample's key once (kept as sortable codes), counts them for
the distributed threshold search, keeps those above the cut, and, with the diversity term, picks
among them. Each step reads the state the shard holds at that moment; the shard logs the steps that
set what the session keeps (``open``, ``keys``, ``cut``, ``diverse``, ``choose``), so a restarted
shard rebuilds an open session exactly from its log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scorer_service.core.label_noise import NoiseFit, noise_rate_part, posterior, suspects
from scorer_service.core.radix import above_cut, digit_counts, key_of, sortable
from scorer_service.core.reduce import Aggregate, Count, Hist, Max, Min, bin_counts, bin_edges
from scorer_service.core.rounds import RoundRecord
from scorer_service.core.scratch import Scratch
from scorer_service.core.state import SampleState
from scorer_service.selection.diversity import DiversityTerm
from scorer_service.selection.registry import KeyContext, SelectorSpec, selector_spec

HISTOGRAM_BINS = 20
_ALL_CODES = (1 << 64) - 1  # the cut that selects nothing
WARM = "all"


@dataclass(frozen=True)
class RoundPlan:
    """What every shard is told when a round's selection opens (JSON-friendly, logged as is)."""

    round: int
    method: str  # a selector's name, or "all" (warm start, full pass)
    n: int
    seed: int
    cycle: int
    params: dict[str, Any] = field(default_factory=dict)
    # Denoising: the fitted mixture and the threshold above which samples leave the pool.
    noise: dict[str, Any] | None = None
    threshold: float | None = None
    # Weight the chosen samples' losses by their inverse inclusion probability (the unbiased option).
    unbiased: bool = False

    @property
    def spec(self) -> SelectorSpec | None:
        return None if self.method == WARM else selector_spec(self.method)


class ShardSession:
    """One shard's part of one round's selection; ``first`` is the global id of ``state``'s position 0."""

    def __init__(
        self,
        state: SampleState,
        first: int,
        plan: RoundPlan,
        previous: RoundRecord | None,
        diversity: DiversityTerm,
        map_fn: Callable | None,
        scratch: Scratch | None = None,
    ) -> None:
        self.state, self.first, self.plan = state, first, plan
        self.previous, self.diversity, self.map_fn = previous, diversity, map_fn
        self.suspect: np.ndarray | None = None
        self.noise: np.ndarray | None = None
        self.ctx = KeyContext(
            state, first, plan.n, plan.seed, plan.round, plan.cycle, plan.params, scratch=scratch
        )
        self.codes = np.zeros(0, dtype=np.uint64)
        # The samples selected so far (local positions, increasing) and their keys.
        self.chosen = np.zeros(0, dtype=np.int64)
        self.chosen_codes = np.zeros(0, dtype=np.uint64)
        self.cut_key: float | None = None

    # ---- the steps ------------------------------------------------------------------------

    def open(self) -> dict[str, Aggregate]:
        """Start: with denoising, which samples are suspect; the DIH range (for its histogram)."""
        self.ctx.memo["dih"] = dih = self.ctx.buffer("dih")
        dih[:] = self.state.dih
        out: dict[str, Aggregate] = {"dih_min": Min.of(dih), "dih_max": Max.of(dih), "suspects": Count(0)}
        if self.plan.noise is not None:
            s = self.state
            self.noise = posterior(s.loss_mean, s.seen, NoiseFit.from_dict(self.plan.noise))
            assert self.plan.threshold is not None  # a denoising plan carries its threshold
            self.suspect = suspects(self.noise, s.last_correct, self.plan.threshold)
            out["suspects"] = Count(int(self.suspect.sum()))
            out |= noise_rate_part(s.last_correct, s.flips)
        return out

    def pool(self, applied: bool, n: int) -> None:
        """Whether the suspects leave the pool (the run's decision), and the pool's size ``n``."""
        eligible = ~self.suspect if applied and self.suspect is not None else None
        self.ctx = replace(self.ctx, eligible=eligible, n=n)

    def stage(self, index: int, stats: dict[str, Any]) -> dict[str, Aggregate]:
        self.ctx = replace(self.ctx, stats=stats)
        assert self.plan.spec is not None  # stages are run for a selector's rounds only
        return self.plan.spec.stages[index](self.ctx)

    def keys(
        self, stats: dict[str, Any], dih_range: tuple[float, float], stream: int | None
    ) -> dict[str, Aggregate]:
        """Every sample's key, kept as codes; ``stream``: instead, uniform keys of that stream among
        the samples chosen so far (a uniform draw among candidates). Returns the selectable count and
        the DIH histogram over the run's range."""
        self.ctx = replace(self.ctx, stats=stats)
        counts = bin_counts(self.ctx.dih, bin_edges(*dih_range, HISTOGRAM_BINS))
        spec = self.plan.spec
        if stream is not None:
            keys = np.full(self.state.n, np.nan)
            keys[self.chosen] = self.ctx.uniform(stream)[self.chosen]
        elif spec is None:
            keys = self.ctx.uniform()
            if self.previous is not None:  # last round's left-out samples lead: none is skipped twice
                keys[self.previous.left_out - self.first] = np.inf
        else:
            keys = spec.keys(self.ctx)
            if self.ctx.eligible is not None:
                keys = np.where(self.ctx.eligible, keys, np.nan)
        # The keys become the codes where they are this session's own (not the state's columns).
        self.codes = sortable(keys, in_place=not _in_state(keys, self.state))
        self.ctx.memo.pop("dih", None)
        return {"selectable": Count(int(np.count_nonzero(self.codes))), "dih_hist": Hist(counts)}

    def counts(self, prefix: int, level: int) -> tuple[np.ndarray, np.ndarray]:
        """How many keys under ``prefix`` have each next 16-bit digit: (digits, counts), nonzero only
        (what a shard sends stays small however many shards there are)."""
        counts = digit_counts(self.codes, np.uint64(prefix), np.int64(level))
        digits = np.flatnonzero(counts)
        return digits.astype(np.uint16), counts[digits]

    def cut(self, threshold: int, ties: int) -> int:
        """Keep the keys above ``threshold`` and the first ``ties`` equal to it."""
        # The cut's key: a sampling selector's inclusion probabilities are conditioned on it.
        self.cut_key = key_of(threshold) if 0 < threshold < _ALL_CODES else None
        self.chosen = above_cut(self.codes, np.uint64(threshold), np.int64(ties))
        self.chosen_codes = self.codes[self.chosen]
        return int(self.chosen.size)

    def diverse(self, k: int, merge: bool, rng_seed: list[int]) -> dict[str, Any]:
        """Keep ``k`` of the chosen by hardness + diversity (this shard's greedy). For a merge round
        elsewhere, also hands over the picks' embeddings and hardness."""
        spec = self.plan.spec
        assert spec is not None  # diversity is a selector's step
        ids = self.chosen
        hardness = np.nan_to_num(self.state.metric(spec.score)[ids], nan=0.0)
        if spec.prefers_low:
            hardness = -hardness
        function = self.diversity.function_or("fl") if spec.diversifies else self.diversity.function
        rng = np.random.default_rng(rng_seed)
        result = self.diversity.select(
            self.state.embedding[ids], hardness, k, self.plan.cycle, rng, self.map_fn, function=function
        )
        picks = ids[result.positions]
        self._choose(picks, len(picks) - np.arange(len(picks), dtype=np.float64))
        out: dict[str, Any] = {"details": self.diversity.details(result)}
        if merge:
            out |= {
                "ids": picks + self.first,
                "embedding": self.state.embedding[picks],
                "hardness": hardness[result.positions],
            }
        return out

    def choose(self, ids: np.ndarray, priority: np.ndarray) -> int:
        """The chosen are ``ids`` (global), ``priority`` their trim keys (higher: kept longer)."""
        self._choose(np.asarray(ids, dtype=np.int64) - self.first, np.asarray(priority, dtype=np.float64))
        return int(self.chosen.size)

    def _choose(self, positions: np.ndarray, priority: np.ndarray) -> None:
        order = np.argsort(positions, kind="stable")
        self.chosen = positions[order]
        self.chosen_codes = sortable(priority[order])

    def lowest(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``m`` lowest chosen in trim order (code up, id down): codes and global ids."""
        return lowest(self.chosen_codes, self.chosen + self.first, m)

    def importance(self) -> np.ndarray | None:
        """The importance weights of the chosen (None: the selector has none)."""
        spec = self.plan.spec
        if spec is None or spec.weights is None:
            return None
        return spec.weights(self.ctx, self.chosen)

    def loss_weights(self, selected: int) -> np.ndarray | None:
        """The loss weights of the chosen (None: 1 each): the selector's own (InfoBatch), or with the
        unbiased option ``(k / n) / pi`` for a selection of ``selected`` = k of a pool of n, pi each
        one's inclusion probability given the cut's key (Duffield, Lund & Thorup's priority sampling),
        clipped at ``weight_clip`` (default 10)."""
        spec = self.plan.spec
        if spec is None:
            return None
        if spec.loss_weights is not None:
            return spec.loss_weights(self.ctx, self.chosen)
        if not self.plan.unbiased or spec.inclusion is None or self.cut_key is None:
            return None
        inclusion = spec.inclusion(self.ctx, self.cut_key)[self.chosen].astype(np.float64)
        weights = (max(1, selected) / self.ctx.n) / np.maximum(inclusion, 1e-12)
        return np.minimum(weights, float(self.ctx.params.get("weight_clip", 10.0))).astype(np.float32)


def lowest(codes: np.ndarray, ids: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` lowest of ``(codes, ids)`` in trim order (increasing code, then decreasing id), in
    O(len) plus a sort of the few at the boundary."""
    m = min(m, len(ids))
    if m == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    kth = codes[np.argpartition(codes, m - 1)[m - 1]] if m < len(codes) else codes.max()
    near = np.flatnonzero(codes <= kth)
    order = near[np.lexsort((-ids[near], codes[near]))][:m]
    return codes[order], ids[order]


def _in_state(values: np.ndarray, state: SampleState) -> bool:
    """Whether ``values`` may share memory with the state's columns (then they are not to be written)."""
    return any(np.may_share_memory(values, c) for c in [*state.columns.values(), *state.matrices.values()])

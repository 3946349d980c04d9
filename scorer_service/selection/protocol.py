"""A round's selection over the shards of a store, run by its coordinator; one store is one shard.

Steps, each asked of every shard at once (:class:`ShardGroup`), each answer a few numbers:

1. ``open``: the DIH range and, when denoising, how many samples are suspects (the mixture is
   fitted beforehand from every shard's loss histogram);
2. ``stage`` per statistic the selector needs (combined exactly, :mod:`scorer_service.core.reduce`);
3. ``keys``: every shard keys its samples and keeps them as sortable codes;
4. ``counts``: a threshold search, 16 bits of the key per pass (four passes), finds the exact k-th
   largest key; ties at it go to the lowest ids, so shards own contiguous id ranges in order;
5. ``cut``: every shard keeps its keys above the cut;
6. with the diversity term (or MCL), GreeDi: every shard keeps its share by stochastic greedy on
   its candidates, and one greedy over the union of their picks chooses the final set (without
   embeddings, MCL draws uniformly among its candidates by a second key);
7. ``lowest``: the selection is trimmed to a multiple of the world size by dropping its lowest keys.

Nothing the size of the run passes through the coordinator: the ids stay where they are selected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from scorer_service.core import counter_rng
from scorer_service.core.label_noise import NoiseFit, fit, labels_look_noisy
from scorer_service.core.radix import DIGITS, LEVELS
from scorer_service.core.reduce import bin_edges, combine
from scorer_service.core.rounds import NO_CUT
from scorer_service.core.wire.answers import RoundSummary
from scorer_service.core.wire.interface import read_only
from scorer_service.selection.diversity import DiversityTerm
from scorer_service.selection.registry import SelectorSpec
from scorer_service.selection.schedule import Budget, Cycles
from scorer_service.selection.session import HISTOGRAM_BINS, WARM, RoundPlan, lowest
from scorer_service.selection.steps import Choose, Counts, Cut, Diverse, Keys, Lowest, Open, Pool, Stage, Step
from scorer_service.submodular.partition import MERGE_OVERSAMPLE, proportional_budgets

# Largest union of the shards' diversity picks merged in one place (64 MiB of 32-d float16 sketches);
# above it every shard keeps its own share (the partitioned solution without GreeDi's merge round).
MAX_MERGE = 1 << 20
_NONE = (1 << 64) - 1  # a threshold above every code: nothing selected
T = TypeVar("T")


class ShardGroup(Protocol):
    """The shards of a store, in id order (``bounds``: shard i holds ids ``bounds[i] .. bounds[i+1]-1``);
    ``call`` asks each with its own arguments, all at once."""

    @property
    def bounds(self) -> np.ndarray: ...

    def call(self, fn: Callable[..., T], args: list[tuple | None]) -> list[T]:
        """``fn(shard i, *args[i])`` of every shard i at once, ``fn`` a method of the shards (each
        answers by its own method of that name; one marked :func:`.read_only` does not wait behind
        changes); a shard whose ``args[i]`` is None is not asked (its answer is None)."""


class SelectionShard(Protocol):
    """What the selection asks of every shard (:class:`~scorer_service.shard.StoreShard` has it)."""

    def select_step(self, round_: int, step: Step) -> Any:
        """Carry out ``step`` of round ``round_``'s selection (:mod:`.steps`)."""

    @read_only
    def keeps(self, matrix: str) -> bool:
        """Whether the shard keeps the per-sample vectors ``matrix``."""

    @read_only
    def noise_part(self, op: str, lo: float = 0.0, hi: float = 0.0) -> dict[str, Any]:
        """The shard's partials of the label-noise fit: the loss ``range``, or its ``hist``."""


def ask(shards: ShardGroup, fn: Callable[..., T], *args: Any) -> list[T]:
    """``fn(shard, *args)`` of every shard."""
    return shards.call(fn, [args] * (len(shards.bounds) - 1))


def step(shards: ShardGroup, round_: int, s: Step) -> list[Any]:
    """One selection step of every shard, the same step."""
    return ask(shards, SelectionShard.select_step, round_, s)


def step_each(shards: ShardGroup, round_: int, each: Sequence[Step]) -> list[Any]:
    """One selection step of every shard, each its own."""
    return shards.call(SelectionShard.select_step, [(round_, s) for s in each])


def find_cut(shards: ShardGroup, round_: int, k: int, selectable: int) -> tuple[int, list[int]]:
    """The exact k-th largest code over every shard (radix select, 16 bits per pass), and how many
    of the keys equal to it each shard keeps (lowest ids first)."""
    count = len(shards.bounds) - 1
    if k >= selectable:
        return 0, [0] * count  # everything selectable
    if k <= 0:
        return _NONE, [0] * count
    prefix, need, last = 0, k, [0] * count
    for level in range(LEVELS):
        parts = step(shards, round_, Counts(prefix, level))
        total = np.zeros(DIGITS, dtype=np.int64)
        for digits, counts in parts:
            total[digits] += counts
        above = np.cumsum(total[::-1])[::-1]
        digit = int(np.flatnonzero(above >= need)[-1])
        need -= int(above[digit] - total[digit])
        prefix = (prefix << 16) | digit
        last = [int(counts[digits == digit].sum()) for digits, counts in parts]
    ties = []
    for tied in last:
        take = min(tied, need)
        ties.append(take)
        need -= take
    return prefix, ties


def trim_cut(parts: list[tuple[np.ndarray, np.ndarray]], counts: list[int], m: int) -> tuple:
    """The trim cut dropping the ``m`` lowest keys of a selection whose shards hold ``counts``, from each
    shard's ``m`` lowest ``(codes, ids)``; and each shard's count after it."""
    if m == 0:
        return NO_CUT, list(counts)
    codes = np.concatenate([p[0] for p in parts]).astype(np.uint64)
    ids = np.concatenate([p[1] for p in parts]).astype(np.int64)
    cut_codes, cut_ids = lowest(codes, ids, m)
    gone = cut_ids
    kept = [c - int(np.isin(p[1], gone).sum()) for c, p in zip(counts, parts, strict=True)]
    return (int(cut_codes[-1]), int(cut_ids[-1])), kept


class RoundPlanner:
    """The rounds of one run as its coordinator plans them: which selection each round makes, over
    any number of shards (see the module docstring)."""

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
        denoise: float | None = None,
        anneal: float = 0.0,
        unbiased: bool = False,
    ) -> None:
        self.spec, self.n, self.cycles, self.budget = spec, n, cycles, budget
        self.diversity, self.seed, self.params = diversity, seed, params
        self.full_pass_each_cycle = full_pass_each_cycle
        # The run's last rounds on all data (annealing), and whether the kept samples' losses are
        # weighted by their inverse inclusion probability.
        self.anneal_rounds = round(anneal * cycles.epochs)
        self.unbiased = unbiased
        # The noise threshold above which likely mislabeled samples leave the candidate pool (None: off).
        self.denoise = denoise

    def warm(self, round_: int) -> bool:
        """Whether ``round_`` trains on all data (warm start, or DoCL's full pass of a cycle)."""
        first_of_cycle = round_ == self.cycles.bounds(self.cycles.cycle_of(round_))[0]
        warming = self.spec.warm_start and self.cycles.selection_cycle(round_) == 0
        annealing = round_ >= self.cycles.epochs - self.anneal_rounds
        return warming or annealing or (self.full_pass_each_cycle and first_of_cycle)

    def recheck(self, round_: int) -> bool:
        """Whether ``round_`` lets --denoise's suspects back into the pool: the last round of a
        selection cycle of two or more rounds, unless it is the run's last (see
        :mod:`..core.label_noise`)."""
        start, end = self.cycles.bounds(self.cycles.cycle_of(round_))
        return round_ == end - 1 and round_ > start and end < self.cycles.epochs

    def select(
        self,
        shards: ShardGroup,
        round_: int,
        world: int,
        noise: NoiseFit | None,
        noisy_labels: bool | None = None,
    ) -> dict[str, Any]:
        """Select round ``round_`` over ``shards`` (each keeps its part, unadopted); returns the round's
        record fields for :meth:`adopt`. ``noise``: the mixture to denoise by (None: no denoising);
        ``noisy_labels``: the run's decision whether its labels are noisy, made at its first denoising
        round (None: not made yet, this round makes it; see :mod:`..core.label_noise`)."""
        t0 = time.perf_counter()
        cycle = self.cycles.selection_cycle(round_)
        warm = self.warm(round_)
        denoise = self.denoise is not None and not warm and noise is not None
        plan = RoundPlan(
            round_,
            WARM if warm else self.spec.name,
            self.n,
            self.seed,
            cycle,
            self.params,
            noise.to_dict() if denoise and noise is not None else None,
            self.denoise if denoise else None,
            self.unbiased,
        )
        opened = combine(step(shards, round_, Open(plan)))
        details: dict[str, Any] = {}
        pool = self.n
        if denoise:
            count = opened["suspects"]
            if noisy_labels is None:
                noisy_labels = labels_look_noisy(opened)
                known = opened["correct_known"]
                details["noise_never_correct_share"] = opened["never_correct"] / known if known else None
            details["noise_labels_noisy"] = noisy_labels
            recheck = self.recheck(round_)
            details["noise_recheck"] = recheck
            # Never fewer candidates than half the data: a mixture fitted to a degenerate loss spread
            # must not starve the selector.
            applied = noisy_labels and 0 < count <= self.n // 2 and not recheck
            details["noise_suspects"] = count
            details["noise_excluded_share"] = count / self.n if applied else 0.0
            pool = self.n - count if applied else self.n
            step(shards, round_, Pool(applied, pool))
        stats: dict[str, Any] = {}
        for index in range(0 if warm else len(self.spec.stages)):
            stats |= combine(step(shards, round_, Stage(index, dict(stats))))
        lo, hi = opened["dih_min"], opened["dih_max"]
        keyed = combine(step(shards, round_, Keys(stats, (lo, hi))))
        selectable = keyed["selectable"]
        if warm:
            name, k = WARM, self.n
            chosen = self._cut(shards, round_, self.n, selectable)
        else:
            name = self.spec.name
            wants = self.spec.size(stats) if self.spec.size else self.budget.size(cycle, self.n)
            k = min(max(world, wants), pool)
            wanted = min(pool, math.ceil(self.spec.candidates * k))
            chosen = self._cut(shards, round_, wanted, selectable)
            if self.spec.diversifies or self.diversity.enabled:
                keep = k if self.spec.diversifies else self.diversity.kept(sum(chosen), world)
                chosen = self._diversify(shards, round_, chosen, keep, details)
                if not self.spec.diversifies:
                    name = f"{self.spec.name}+{self.diversity.function}"
        m = sum(chosen) % world
        cut, counts = trim_cut(step(shards, round_, Lowest(m)) if m else [], chosen, m)
        edges = bin_edges(lo, hi, HISTOGRAM_BINS)
        return {
            "round": round_,
            "cycle": cycle,
            "selector": name,
            "budget": k,
            "world_size": world,
            "selection_ms": (time.perf_counter() - t0) * 1e3,
            "trim": list(cut),
            "counts": counts,
            "dih_histogram": {"counts": keyed["dih_hist"].tolist(), "edges": edges.tolist()},
            "details": details,
        }

    def _cut(self, shards: ShardGroup, round_: int, k: int, selectable: int) -> list[int]:
        threshold, ties = find_cut(shards, round_, k, selectable)
        return step_each(shards, round_, [Cut(threshold, t) for t in ties])

    def _diversify(
        self, shards: ShardGroup, round_: int, chosen: list[int], keep: int, details: dict[str, Any]
    ) -> list[int]:
        """Keep ``keep`` of the candidates each shard holds: GreeDi over the shards."""
        if self.spec.diversifies and not all(ask(shards, SelectionShard.keeps, "embedding")):
            # MCL without embeddings (official code's fallback): a uniform draw among the candidates.
            keyed = combine(step(shards, round_, Keys({}, (0.0, 1.0), counter_rng.CANDIDATES)))
            return self._cut(shards, round_, keep, keyed["selectable"])
        function = self.diversity.function_or("fl") if self.spec.diversifies else self.diversity.function
        count = len(shards.bounds) - 1
        shares = proportional_budgets(np.asarray(chosen), keep)
        merge = count > 1
        if merge:
            over = np.minimum(chosen, np.ceil(shares * MERGE_OVERSAMPLE[function]).astype(np.int64))
            merge = int(over.sum()) <= MAX_MERGE
            shares = over if merge else shares
        picks = step_each(
            shards, round_, [Diverse(int(s), merge, [self.seed, round_, i]) for i, s in enumerate(shares)]
        )
        if count == 1:
            details |= picks[0]["details"]
            return [int(shares[0])]
        details |= {"diversity_shards": count, "diversity_merged": merge}
        if not merge:
            return [int(s) for s in shares]
        ids = np.concatenate([p["ids"] for p in picks])
        result = self.diversity.select(
            np.concatenate([p["embedding"] for p in picks]),
            np.concatenate([p["hardness"] for p in picks]),
            keep,
            self.cycles.selection_cycle(round_),
            np.random.default_rng([self.seed, round_]),
            function=function,
        )
        final = ids[result.positions]
        details |= self.diversity.details(result) | {"diversity_merged": True, "diversity_union": len(ids)}
        priority = (len(final) - np.arange(len(final))).astype(np.float64)
        owner = np.searchsorted(shards.bounds, final, side="right") - 1
        each = [Choose(final[owner == i], priority[owner == i]) for i in range(count)]
        return step_each(shards, round_, each)


def fit_noise(shards: ShardGroup) -> NoiseFit:
    """The label-noise mixture fitted to every shard's histogram of its samples' mean loss."""
    stats = combine(ask(shards, SelectionShard.noise_part, "range"))
    if stats["loss_count"] >= 2 and stats["loss_max"] > stats["loss_min"]:
        stats |= combine(ask(shards, SelectionShard.noise_part, "hist", stats["loss_min"], stats["loss_max"]))
    return fit(stats)


def noisy_labels_decision(rounds: list[RoundSummary]) -> bool | None:
    """The run's decision whether its labels are noisy, from its round records (None: no denoising
    round has made it yet)."""
    for r in sorted(rounds, key=lambda r: r.round):
        decided = (r.details or {}).get("noise_labels_noisy")
        if decided is not None:
            return decided
    return None

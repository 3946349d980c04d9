"""The selector registry: a name maps to one :class:`SelectorSpec`, everything the store needs to know.

A selector gives every sample a key from what the shard holding it knows (its state, its id, the
round's seed) and a few statistics of the whole run; the round's selection is then the k largest
keys, ties to the lowest id. So a store split over any number of shards selects exactly what one
store selects: each shard computes its statistics' parts (``stages``, combined exactly, see
:mod:`scorer_service.core.reduce`) and its keys, and an exact distributed top-k picks the cut.
Random selectors draw their keys from counter-based generators keyed by (seed, round, sample id)
(:mod:`scorer_service.core.counter_rng`). Adding a selector is one :func:`register` call, as apricot
maps names to optimizers; nothing elsewhere tests a method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from scorer_service.core import counter_rng
from scorer_service.core.radix import sortable
from scorer_service.core.ranking import top_codes
from scorer_service.core.reduce import Aggregate, combine
from scorer_service.core.scratch import Scratch
from scorer_service.core.state import SampleState
from scorer_service.selection.schedule import Budget


@dataclass(frozen=True)
class KeyContext:
    """What a selector's functions may look at on one shard: its samples (global ids ``first ..``),
    the round, and the run's statistics of the stages so far. ``eligible`` (None: all) marks the
    candidate pool; ``n`` is the pool's size over the whole run."""

    state: SampleState
    first: int
    n: int
    seed: int
    round: int
    cycle: int
    params: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    eligible: np.ndarray | None = None
    # What one step of a selection computes for a later one (the DIH read at its opening, DIHCL-Exp's
    # softmax terms, then its probabilities), shared by every copy of the context; a shard logs
    # every step that fills it.
    memo: dict[str, np.ndarray] = field(default_factory=dict)
    # Where a shard's selection takes its temporaries from (None: fresh arrays), see core.scratch.
    scratch: Scratch | None = None

    @property
    def dih(self) -> np.ndarray:
        """The samples' DIH: as the selection read it when it opened (a contiguous copy in ``memo``,
        so that every step sees the same values and reads them fast), else the state's column."""
        return self.memo.get("dih", self.state.dih)

    def buffer(self, name: str, dtype: type = np.float64) -> np.ndarray:
        """An uninitialized temporary of one value per sample (see ``scratch``)."""
        n = self.state.n
        return np.empty(n, dtype=dtype) if self.scratch is None else self.scratch.array(name, n, dtype)

    def pool(self, values: np.ndarray) -> np.ndarray:
        """``values`` of the eligible samples only."""
        return values if self.eligible is None else values[self.eligible]

    def gumbel(self, log_weights: np.ndarray) -> np.ndarray:
        """Gumbel-top-k keys for sampling without replacement with probabilities ~ exp(log_weights)."""
        return counter_rng.gumbel_keys(log_weights, self.seed, self.round, counter_rng.KEYS, self.first)

    def race(self, weights: np.ndarray) -> np.ndarray:
        """Keys for sampling without replacement with probabilities ~ ``weights`` (>= 0): the law of
        :meth:`gumbel` of their logarithms, cheaper; in the ``keys`` buffer (``weights`` may be it)."""
        out = self.buffer("keys")
        return counter_rng.race_keys(weights, self.seed, self.round, counter_rng.KEYS, self.first, out)

    def uniform(self, stream: int = counter_rng.KEYS) -> np.ndarray:
        return counter_rng.uniforms(self.seed, self.round, stream, self.first, self.state.n)


Stage = Callable[[KeyContext], dict[str, Aggregate]]
Keys = Callable[[KeyContext], np.ndarray]
Weights = Callable[[KeyContext, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Selection:
    """A selection in one process: ids best first, and the importance weight of each."""

    ids: np.ndarray
    importance: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectorSpec:
    """A registered selector and what the store needs to know about it."""

    name: str
    keys: Keys
    # Statistics of the whole run the keys need, in order: each stage sees the ones before.
    stages: tuple[Stage, ...] = ()
    # The weight the next observation of each selected sample is multiplied by (DIHCL-Exp), from
    # the context and the selected samples' local positions.
    weights: Weights | None = None
    # The per-sample score it ranks by: the modular term when the diversity term refines its pick.
    score: str = "dih"
    # True when smaller scores are preferred (SPL picks easy samples).
    prefers_low: bool = False
    budget: Budget = field(default_factory=Budget)
    # Optional byproducts the selector reads: "correct", "outputs" (DoCL), "embedding" (MCL).
    byproducts: frozenset[str] = frozenset()
    # > 1: the keys pick this many times the budget as candidates, and the diversity term (or, without
    # embeddings, a uniform draw) keeps the budget of them (MCL).
    candidates: float = 1.0
    # True when the selector applies the diversity term itself (MCL): the store does not add it again.
    diversifies: bool = False
    # The weight of each selected sample's loss in the trainers' batch mean, from the context and the
    # selected samples' local positions (InfoBatch rescales the low-loss samples it keeps).
    loss_weights: Weights | None = None
    # The selection's size from the run's statistics instead of the budget (InfoBatch keeps every
    # sample its pruning rule keeps, however many that is).
    size: Callable[[dict[str, Any]], int] | None = None
    # False: the selector selects in the warm-start rounds too (its rule already keeps every unseen
    # sample, as InfoBatch's does), so the warm start only shapes the learning rate.
    warm_start: bool = True
    # Share of the run's last rounds trained on all data by default (InfoBatch's annealing).
    anneal: float = 0.0
    # Sampling selectors: each sample's probability that its random key exceeds the cut's key tau,
    # i.e. of being selected given tau (priority sampling's conditioning); the unbiased option's
    # weights are the inverses.
    inclusion: Callable[[KeyContext, float], np.ndarray] | None = None

    def statistics(self, ctx: KeyContext) -> KeyContext:
        """``ctx`` with every stage's statistics, for one process holding every sample."""
        for stage in self.stages:
            ctx = replace(ctx, stats={**ctx.stats, **combine([stage(ctx)])})
        return ctx

    def select(self, ctx: KeyContext, k: int) -> Selection:
        """The k largest keys over one process's samples (ties: lowest id), best first: the very
        selection a store makes over any number of shards (selectors that pick candidates for a
        diversity step, MCL, select through a store)."""
        if self.candidates != 1.0:
            raise ValueError(f"{self.name} selects in two steps; select through a store")
        ctx = self.statistics(ctx)
        keys = self.keys(ctx)
        if ctx.eligible is not None:
            keys = np.where(ctx.eligible, keys, np.nan)
        order = top_codes(sortable(keys), k)
        weights = None if self.weights is None else self.weights(ctx, order)
        return Selection(order + ctx.first, weights)


SELECTORS: dict[str, SelectorSpec] = {}


def register(name: str, **spec: Any) -> Callable[[Keys], Keys]:
    """Register the decorated key function as ``name`` with the :class:`SelectorSpec` fields ``spec``."""

    def deco(fn: Keys) -> Keys:
        SELECTORS[name] = SelectorSpec(name, fn, **spec)
        return fn

    return deco


def selector_spec(name: str) -> SelectorSpec:
    try:
        return SELECTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown selector {name!r}; expected one of {', '.join(sorted(SELECTORS))}"
        ) from None


def get_selector(name: str) -> Callable[[KeyContext, int], Selection]:
    """The one-process selection of the selector registered under ``name``."""
    return selector_spec(name).select

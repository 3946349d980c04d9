"""The selector registry: a name maps to one :class:`SelectorSpec`, everything the store needs to know.

A selector is a small function ``(SelectionContext, k) -> Selection``; its spec says which score it
ranks by (the modular term when the diversity term refines its pick), its budget schedule and the
optional byproducts it reads. Adding a selector is one :func:`register` call, as apricot maps names
to optimizers; nothing elsewhere tests a method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scorer_service.core.state import SampleState
from scorer_service.selection.diversity import DiversityTerm
from scorer_service.selection.schedule import Budget


@dataclass(frozen=True)
class Selection:
    ids: np.ndarray
    importance: np.ndarray | None = None
    # What the round records about how it was selected (a diversity step's report, ...).
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectionContext:
    """What a selector may look at: the state, the 1-based selection cycle and the generator."""

    state: SampleState
    cycle: int
    rng: np.random.Generator
    params: dict[str, Any]
    diversity: DiversityTerm = field(default_factory=DiversityTerm)
    # How diversity blocks are solved (see submodular.partition); None: a thread pool.
    map_fn: Callable | None = None


Selector = Callable[[SelectionContext, int], Selection]


@dataclass(frozen=True)
class SelectorSpec:
    """A registered selector and what the store needs to know about it."""

    name: str
    select: Selector
    # The per-sample score it ranks by: the modular term when the diversity term refines its pick.
    score: str = "dih"
    # True when smaller scores are preferred (SPL picks easy samples).
    prefers_low: bool = False
    budget: Budget = field(default_factory=Budget)
    # Optional byproducts the selector reads: "correct", "outputs" (DoCL), "embedding" (MCL).
    byproducts: frozenset[str] = frozenset()
    # True when the selector applies the diversity term itself (MCL): the store does not add it again.
    diversifies: bool = False


SELECTORS: dict[str, SelectorSpec] = {}


def register(name: str, **spec: Any) -> Callable[[Selector], Selector]:
    """Register the decorated function under ``name`` with the :class:`SelectorSpec` fields in ``spec``."""

    def deco(fn: Selector) -> Selector:
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


def get_selector(name: str) -> Selector:
    """The selection function registered under ``name``."""
    return selector_spec(name).select

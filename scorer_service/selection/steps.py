"""The steps of a round's selection that the coordinator asks of every shard, one type per step.

:mod:`.protocol` sends them, :class:`~.session.ShardSession` carries them out, and the shard logs the
:data:`LOGGED` ones (those that set what its session keeps) so a restart rebuilds an open session.
In a write-ahead log a step is its :attr:`~Step.name` and its fields (:func:`payload`, :func:`decode`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scorer_service.selection.session import RoundPlan


@dataclass(frozen=True)
class Open:
    """Open the round's selection (a new one replaces an unfinished one)."""

    name: ClassVar[str] = "open"
    plan: RoundPlan


@dataclass(frozen=True)
class Pool:
    """Whether the suspects leave the pool, and the pool's size."""

    name: ClassVar[str] = "pool"
    applied: bool
    n: int


@dataclass(frozen=True)
class Stage:
    """The selector's stage ``index`` over the run's statistics so far."""

    name: ClassVar[str] = "stage"
    index: int
    stats: dict[str, Any]


@dataclass(frozen=True)
class Keys:
    """Key every sample (``stream``: uniform keys of that stream among the chosen instead)."""

    name: ClassVar[str] = "keys"
    stats: dict[str, Any]
    dih_range: tuple[float, float]
    stream: int | None = None


@dataclass(frozen=True)
class Counts:
    """Count the keys under ``prefix`` by their next digit (threshold search, pass ``level``)."""

    name: ClassVar[str] = "counts"
    prefix: int
    level: int


@dataclass(frozen=True)
class Cut:
    """Keep the keys above ``threshold`` and the first ``ties`` equal to it."""

    name: ClassVar[str] = "cut"
    threshold: int
    ties: int


@dataclass(frozen=True)
class Diverse:
    """Keep ``k`` of the chosen by hardness and diversity (``merge``: hand the picks over)."""

    name: ClassVar[str] = "diverse"
    k: int
    merge: bool
    rng: list[int] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class Choose:
    """The chosen are ``ids`` (global), ``priority`` their trim keys."""

    name: ClassVar[str] = "choose"
    ids: np.ndarray
    priority: np.ndarray


@dataclass(frozen=True)
class Lowest:
    """The ``m`` lowest chosen, in trim order."""

    name: ClassVar[str] = "lowest"
    m: int


Step = Open | Pool | Stage | Keys | Counts | Cut | Diverse | Choose | Lowest
# The steps that set what a session keeps: logged, so a restarted shard rebuilds the session.
LOGGED: tuple[type, ...] = (Open, Pool, Stage, Keys, Cut, Diverse, Choose)
_BY_NAME: dict[str, type[Step]] = {
    c.name: c for c in (Open, Pool, Stage, Keys, Counts, Cut, Diverse, Choose, Lowest)
}


def payload(step: Step) -> dict[str, Any]:
    """``step``'s fields as a log record's payload (an open step: the plan's fields)."""
    if isinstance(step, Open):
        return dict(step.plan.__dict__)
    return {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}


def decode(name: str, fields: dict[str, Any]) -> Step:
    """The step a log record names, from its payload."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ValueError(f"unknown selection step {name!r}")
    if cls is Open:
        return Open(RoundPlan(**fields))
    fields = dict(fields)
    if "stats" in fields:
        # Older logs name each statistic "name:op".
        fields["stats"] = {k.replace(":", "_"): v for k, v in fields["stats"].items()}
    if "dih_range" in fields:
        fields["dih_range"] = tuple(fields["dih_range"])
    return cls(**fields)

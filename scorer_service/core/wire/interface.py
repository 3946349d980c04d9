"""The store's public methods, declared once, and the marks on them that its shells read.

:class:`StoreInterface` is what every transport carries: the store itself
(:class:`~scorer_service.store.HardnessStore`), the trainers' endpoints over Ray and over REST, and
the web layer's directory, which takes one of these methods as a value
(``await directory.call(run, StoreInterface.info)``) instead of its name. :class:`TrainerInterface`
is the part a training loop calls, the part every endpoint carries.

A method marked :func:`read_only` changes nothing: the Ray shells answer it from the actor's "query"
concurrency group, so a score query never waits behind queued ingests (the store's read lock still
makes every answer come from one state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from scorer_service.core.state import Sample
    from scorer_service.core.wire.answers import (
        Histogram,
        LabelIssue,
        RoundSummary,
        RunInfo,
        Subset,
        TopEntry,
    )
    from scorer_service.core.wire.batch import Ingested

F = TypeVar("F", bound=Callable[..., Any])


def read_only(fn: F) -> F:
    """Mark ``fn`` as a method that only reads."""
    fn.__read_only__ = True  # type: ignore[attr-defined]
    return fn


def is_read_only(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (a function, or a bound method of it) was marked :func:`read_only`."""
    return bool(getattr(fn, "__read_only__", False))


class TrainerInterface(Protocol):
    """The store of one run as a training loop calls it."""

    def ingest(self, data: dict[str, Any]) -> Ingested:
        """Validate and apply one byproduct batch; its acknowledgement (``lag_s``, ...)."""
        ...

    def subset(self, round_: int, rank: int, world_size: int, step: int | None = None) -> np.ndarray:
        """Rank ``rank``'s shard of round ``round_``'s subset (selected on the round's first request)."""
        ...

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        """Attach the trainer's end-of-round metrics to a round: the round's end."""
        ...

    def rewind(self, completed_round: int) -> bool:
        """Return the store to the end of ``completed_round``; whether it changed anything."""
        ...

    def info(self) -> RunInfo:
        """Counters and settings (``config``) of the run."""
        ...

    def parameters(self, ids: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        """Instance data parameters (log sigma and its momentum) of ``ids``."""
        ...

    def loss_weights(self, ids: np.ndarray | list[int]) -> np.ndarray:
        """The weight of each of ``ids``' loss in the trainers' batch mean, as the newest round chose it."""
        ...


class StoreInterface(TrainerInterface, Protocol):
    """Every public method of a run's store: the trainers' calls and the score queries."""

    def prepare(self, round_: int, world_size: int, step: int | None = None) -> list[int]:
        """Select round ``round_`` on its first request; how many ids each shard trains on."""
        ...

    def snapshot(self) -> int:
        """Write a snapshot now; its number."""
        ...

    def round_summaries(self) -> list[RoundSummary]:
        """Each round: size, selector, selection time, ingested samples and recorded metrics."""
        ...

    def samples(self, ids: np.ndarray | list[int]) -> list[Sample]:  # type: ignore[valid-type]
        """Every score of each sample in ``ids``."""
        ...

    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[TopEntry]:
        """The ``k`` hardest (``desc``) or easiest (``asc``) samples by ``metric``."""
        ...

    def histogram(self, metric: str = "dih", bins: int = 20) -> Histogram:
        """The distribution of ``metric`` over all samples."""
        ...

    def round_subset(self, round_: int, offset: int = 0, limit: int = 1000) -> Subset:
        """The ids trained on in ``round_``, paged."""
        ...

    def column(self, name: str) -> np.ndarray:
        """One whole state column."""
        ...

    def columns(self, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Whole state columns (default: all)."""
        ...

    def label_issues(self, threshold: float = 0.5, limit: int = 100) -> list[LabelIssue]:
        """Samples whose label is likely wrong, most likely first."""
        ...

    def layout(self) -> list[int]:
        """The shards' id ranges: shard i holds ``bounds[i] .. bounds[i + 1] - 1``."""
        ...

    def part_columns(self, shard: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Whole columns of one shard's samples, from one state of it (export)."""
        ...

"""What a store answers about its run, as typed values.

The Python handles (``curriculum.Run``, ``curriculum.Client``) return these, and the REST API's
answers are their JSON: its models (:mod:`scorer_service.web.models`) are made from these classes,
so every shape is stated here once (a sample's scores: :data:`scorer_service.core.state.Sample`).
Floats that are undefined (NaN) are None. Dataclasses only: the client library reads them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

RunState = Literal["running", "finished"]


@dataclass(frozen=True, kw_only=True)
class ShardLoad:
    """One store shard: its ids (``first`` and ``n`` of them), what it ingested, how far it is behind."""

    first: int
    n: int
    ingested: int
    lag_s: float
    max_lag_s: float
    queued: int
    writers: int


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """A run as listings show it: its state, size, selector, rounds and counters."""

    run: str
    # finished: every round it was created for is recorded.
    state: RunState
    n: int
    method: str
    metric: str
    epochs: int
    rounds: int
    rounds_completed: int
    steps: int
    ingested: int
    batches: int
    rejected: int
    duplicates: int
    # Observations dropped because the sample had been observed at a later step (max_staleness runs).
    superseded: int = 0
    ingest_samples_per_s: float


@dataclass(frozen=True, kw_only=True)
class RunInfo(RunSummary):
    """One run's state, counters and settings, and the load of each of its shards."""

    # Of the write-ahead logs.
    fsyncs: int = 0
    config: dict[str, Any]
    shards: list[ShardLoad] = field(default_factory=list)

    def summary(self) -> RunSummary:
        """The run as listings show it."""
        return RunSummary(**{f.name: getattr(self, f.name) for f in fields(RunSummary)})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInfo:
        """The info from its JSON (the REST API's answer)."""
        return cls(**{**data, "shards": [ShardLoad(**s) for s in data.get("shards", [])]})


def run_state(rounds_completed: int, epochs: int) -> RunState:
    """``finished`` once every round the run was created for is recorded, else ``running``."""
    return "finished" if rounds_completed >= epochs else "running"


@dataclass(frozen=True, kw_only=True)
class RoundSummary:
    """One round: its selector, size, selection time, ingested samples and the trainers' metrics."""

    round: int
    cycle: int
    selector: str
    budget: int
    size: int
    world_size: int
    selection_ms: float
    ingested: int
    metrics: dict[str, float]
    # Whether the round's end was recorded (with metrics or none): a completed round.
    recorded: bool
    # {"counts": [...], "edges": [...]} at selection time; empty for rounds restored from old snapshots.
    dih_histogram: dict[str, list[int | float]]
    # What the selection did besides picking: samples left out as likely mislabeled, ...
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Histogram:
    """The distribution of a score over all samples (``missing``: samples without a value)."""

    metric: str
    counts: list[int]
    edges: list[float]
    missing: int


@dataclass(frozen=True, kw_only=True)
class Subset:
    """Ids trained on in a round, ``offset ..`` of ``total``, in shard order and id order within."""

    round: int
    total: int
    offset: int
    ids: list[int]


@dataclass(frozen=True, kw_only=True)
class TopEntry:
    """One sample of a ``top`` answer: its id and its value of the metric that ranked it. Its JSON keys
    the value by the metric's name: ``{"id": 17, "dih": 3.2}``."""

    id: int
    metric: str
    value: float

    def to_json(self) -> dict[str, int | float]:
        return {"id": self.id, self.metric: self.value}

    @classmethod
    def from_json(cls, data: dict[str, Any], metric: str) -> TopEntry:
        return cls(id=int(data["id"]), metric=metric, value=float(data[metric]))


@dataclass(frozen=True, kw_only=True)
class LabelIssue:
    """A sample whose label is likely wrong: its noise probability, the label trained on, the model's
    latest prediction (-1: not sent), its mean loss and how often it was seen."""

    id: int
    noise: float | None
    label: int
    predicted: int
    loss_mean: float | None
    seen: int

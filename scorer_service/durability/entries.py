"""The changes a shard logs before it applies them, one type per kind, and their write-ahead log form.

A shard builds the entry of a change, logs it (:meth:`~.journal.Journal.log`) and applies that very
entry; a restart reads the entries back (:func:`decode`) and applies them again, one at a time. In a
log an entry is a JSON header whose ``kind`` names its type, with its arrays as Arrow columns
(:func:`encode`); the header of every kind keeps the fields and names it has always had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scorer_service.core.wire.batch import RECORD_FIELDS
from scorer_service.selection import steps
from scorer_service.selection.steps import Step

Columns = dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class IngestEntry:
    """One byproduct batch applied: its identity, its columns, the ingest time of the batches before
    it (as measured when they arrived) and its learning-rate table (steps, rates), if it carried one."""

    kind: ClassVar[str] = "ingest"
    round: int
    rank: int
    writer: Any
    seq: int
    t: float
    columns: Columns = field(default_factory=dict)
    table: tuple[list[int], list[float]] | None = None

    def batch(self) -> dict[str, Any]:
        """The batch as the trainers sent it."""
        data: dict[str, Any] = {**self.columns, **{k: getattr(self, k) for k in RECORD_FIELDS}}
        if self.table is not None:
            data["table_step"] = np.asarray(self.table[0], dtype=np.int64)
            data["table_lr"] = np.asarray(self.table[1], dtype=np.float64)
        return data


@dataclass(frozen=True)
class StepEntry:
    """A selection step that sets what the round's session keeps (:data:`.steps.LOGGED`)."""

    kind: ClassVar[str] = "step"
    round: int
    step: Step


@dataclass(frozen=True)
class AdoptEntry:
    """A round's open selection made the shard's part of the round (``meta``: the run's record fields)."""

    kind: ClassVar[str] = "adopt"
    round: int
    meta: dict[str, Any]


@dataclass(frozen=True)
class ReshardEntry:
    """A round's selection re-cut for another world size."""

    kind: ClassVar[str] = "reshard"
    round: int
    world: int
    trim: list[int]
    counts: list[int]


@dataclass(frozen=True)
class RecordEntry:
    """A round's end: its metrics and the run's refitted label-noise mixture."""

    kind: ClassVar[str] = "record"
    round: int
    metrics: dict[str, float]
    noise: dict[str, Any]


@dataclass(frozen=True)
class RejectedEntry:
    """A batch refused as invalid (counted, nothing applied)."""

    kind: ClassVar[str] = "rejected"


@dataclass(frozen=True)
class DuplicatesEntry:
    """A batch already applied, sent again (counted, nothing applied)."""

    kind: ClassVar[str] = "duplicates"


Entry = IngestEntry | StepEntry | AdoptEntry | ReshardEntry | RecordEntry | RejectedEntry | DuplicatesEntry


def encode(entry: Entry) -> tuple[dict[str, Any], Columns | None]:
    """``entry`` as a log record's header and columns."""
    match entry:
        case IngestEntry():
            header = {"kind": entry.kind, **{k: getattr(entry, k) for k in RECORD_FIELDS}, "t": entry.t}
            if entry.table is not None:
                header["table"] = [list(entry.table[0]), list(entry.table[1])]
            return header, entry.columns
        case StepEntry():
            fields = steps.payload(entry.step)
            arrays = {k: v for k, v in fields.items() if isinstance(v, np.ndarray)}
            rest = {k: v for k, v in fields.items() if k not in arrays}
            header = {"kind": entry.kind, "round": entry.round, "step": entry.step.name}
            return header | {"payload": rest}, arrays
        case AdoptEntry():
            return {"kind": entry.kind, "round": entry.round, "meta": entry.meta}, None
        case ReshardEntry():
            header = {"kind": entry.kind, "round": entry.round, "world": entry.world}
            return header | {"trim": entry.trim, "counts": entry.counts}, None
        case RecordEntry():
            header = {"kind": entry.kind, "round": entry.round, "metrics": entry.metrics}
            return header | {"noise": entry.noise}, None
        case RejectedEntry() | DuplicatesEntry():
            return {"kind": entry.kind}, None
    raise TypeError(f"not a log entry: {entry!r}")


def decode(header: dict[str, Any], columns: Columns) -> Entry:
    """The entry a log record holds."""
    kind = header["kind"]
    if kind == "ingest":
        ids = {k: header[k] for k in RECORD_FIELDS}
        table = (header["table"][0], header["table"][1]) if "table" in header else None
        return IngestEntry(**ids, t=header["t"], columns=columns, table=table)
    if kind == "step":
        return StepEntry(header["round"], steps.decode(header["step"], {**header["payload"], **columns}))
    if kind == "adopt":
        return AdoptEntry(header["round"], header["meta"])
    if kind == "reshard":
        return ReshardEntry(header["round"], header["world"], header["trim"], header["counts"])
    if kind == "record":
        return RecordEntry(header["round"], header["metrics"], header["noise"])
    if kind == "rejected":
        return RejectedEntry()
    if kind == "duplicates":
        return DuplicatesEntry()
    raise ValueError(f"unknown record kind {kind!r}")

"""Exactly-once ingest: which (writer, sequence number) pairs the store has applied."""

from __future__ import annotations

from typing import Any

# Per writer, ``[low, [sequence numbers above low]]``: lists, as a snapshot's JSON holds them.
AppliedState = dict[str, list[Any]]


class AppliedSequences:
    """Which sequence numbers of each writer were applied: everything up to ``low`` plus a set above it.

    A set rather than a maximum, so a retried call that overtakes a later one is still applied once.
    """

    def __init__(self, state: AppliedState | None = None) -> None:
        self.low: dict[str, int] = {}
        self.above: dict[str, set[int]] = {}
        for writer, (low, above) in (state or {}).items():
            self.low[writer], self.above[writer] = low, set(above)

    def __contains__(self, key: tuple[str, int]) -> bool:
        writer, seq = key
        return seq <= self.low.get(writer, -1) or seq in self.above.get(writer, ())

    def add(self, writer: str, seq: int) -> None:
        above = self.above.setdefault(writer, set())
        above.add(seq)
        low = self.low.get(writer, -1)
        while low + 1 in above:
            low += 1
            above.discard(low)
        self.low[writer] = low

    def state(self) -> AppliedState:
        return {w: [self.low[w], sorted(self.above.get(w, ()))] for w in self.low}

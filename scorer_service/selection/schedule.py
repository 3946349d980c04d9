"""Training schedule shared by the store (budget per round) and the trainers (learning rate).

A run is a sequence of *rounds* (one epoch over the round's subset). Rounds are grouped into
*cycles*: cycle 0 is the warm start on all data, every later cycle is one cosine-annealing episode
of the cyclic learning rate (DIHCL, Zhou et al. NeurIPS 2020, Alg. 1 and App. B).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Cycles:
    """Cycle boundaries over ``epochs`` rounds: warm start first, then equal-length cycles.

    ``boundaries`` overrides the equal-length layout with explicit cycle start rounds, e.g. the
    paper's CIFAR schedule ``(0, 5, 10, 15, 20, 30, 40, 60, 90, 140, 210)`` for 300 epochs.
    """

    epochs: int
    warm_start: int = 5
    cycle_length: int = 5
    boundaries: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.warm_start < 0:
            raise ValueError(f"warm_start must be >= 0, got {self.warm_start}")
        if self.cycle_length < 1:
            raise ValueError(f"cycle_length must be >= 1, got {self.cycle_length}")
        if self.boundaries is not None:
            b = self.boundaries
            if not b or b[0] != 0 or any(x >= y for x, y in zip(b, b[1:], strict=False)):
                raise ValueError(f"boundaries must start at 0 and increase strictly, got {b}")

    @property
    def starts(self) -> tuple[int, ...]:
        """First round of every cycle (cycle 0 is the warm start when ``warm_start > 0``)."""
        if self.boundaries is not None:
            return tuple(x for x in self.boundaries if x < self.epochs)
        starts = [0]
        r = self.warm_start if self.warm_start > 0 else self.cycle_length
        while r < self.epochs:
            starts.append(r)
            r += self.cycle_length
        return tuple(starts)

    def cycle_of(self, round_: int) -> int:
        """Index of the cycle that contains ``round_``."""
        starts = self.starts
        c = 0
        while c + 1 < len(starts) and starts[c + 1] <= round_:
            c += 1
        return c

    def bounds(self, cycle: int) -> tuple[int, int]:
        """``[start, end)`` rounds of ``cycle``."""
        starts = self.starts
        end = starts[cycle + 1] if cycle + 1 < len(starts) else self.epochs
        return starts[cycle], end

    def selection_cycle(self, round_: int) -> int:
        """0 during the warm start, else the 1-based index of the selection cycle of ``round_``."""
        return self.cycle_of(round_) + (0 if self.warm_start > 0 else 1)

    def position(self, round_: int, fraction: float) -> float:
        """Progress in [0, 1] through the cycle of ``round_``, ``fraction`` of the way into it."""
        start, end = self.bounds(self.cycle_of(round_))
        return min(1.0, (round_ - start + fraction) / (end - start))


@dataclass(frozen=True)
class Budget:
    """Fraction of the n samples selected in each selection cycle.

    cycle 0 (warm start) trains on everything; cycle c >= 1 selects
    ``clip(start * factor**(c-1), floor, cap)``. The DIHCL paper shrinks by 0.85 per cycle
    from 0.85 down to 0.2 (App. B); DoCL/SPL/MCL's official code grows instead (e.g. 0.2, x1.1, cap 0.9).
    """

    start: float = 0.85
    factor: float = 0.85
    floor: float = 0.2
    cap: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.cap <= 1:
            raise ValueError(f"need 0 < floor <= cap <= 1, got floor={self.floor}, cap={self.cap}")
        if not 0 < self.start <= 1 or self.factor <= 0:
            raise ValueError(f"need 0 < start <= 1 and factor > 0, got {self.start}, {self.factor}")

    def fraction(self, cycle: int) -> float:
        """Budget fraction of cycle ``cycle``."""
        if cycle == 0:
            return 1.0
        return min(self.cap, max(self.floor, self.start * self.factor ** (cycle - 1)))

    def size(self, cycle: int, n: int) -> int:
        """Number of samples to select in ``cycle`` out of ``n`` (at least 1)."""
        return max(1, min(n, round(self.fraction(cycle) * n)))


def cyclic_cosine_lr(
    cycles: Cycles, round_: int, fraction: float, lr_max: float, lr_min: float, decay: float = 0.85
) -> float:
    """Learning rate at ``fraction`` of the way through ``round_``.

    Cosine annealing from ``lr_max`` to ``lr_min`` within each cycle; both ends are multiplied by
    ``decay`` at every cycle boundary (DIHCL App. B: each episode's start/target LR decayed x0.85).
    """
    c = cycles.cycle_of(round_)
    hi, lo = lr_max * decay**c, lr_min * decay**c
    p = cycles.position(round_, fraction)
    return lo + 0.5 * (hi - lo) * (1.0 + math.cos(math.pi * p))

"""Bounded staleness: how far a round's scores may be behind the trainers when it is selected.

With ``max_staleness`` ≥ 0 the ranks do not wait for each other at a round's end: the first rank to
ask for the next round carries its newest optimizer step, and the round is selected once every rank's
byproducts up to at most ``max_staleness`` steps before it are applied on every shard. Byproducts
still in flight then count for the round after. In data-parallel training every rank takes the same
steps, so the asking rank's step is the run's.
"""

from __future__ import annotations

from collections.abc import Callable

from scorer_service.core.errors import NotReady


def lag(progress: list[dict[int, int]], world_size: int, step: int) -> int:
    """Steps between ``step`` and the newest step that every rank of ``world_size`` has reached on
    every shard (``progress``: per shard, each rank's newest applied step)."""
    reached = min(min(part.get(rank, -1) for part in progress) for rank in range(world_size))
    return max(0, step - reached)


def admit(
    round_: int, world_size: int, step: int | None, bound: int, progress: Callable[[], list[dict[int, int]]]
) -> dict[str, int]:
    """The round's details on staleness if ``round_`` may be selected now: {} for a run whose ranks
    wait for each other (``bound`` -1, or no ``step``), else the lag reached (``staleness_steps``);
    :class:`NotReady` when the scores are more than ``bound`` steps behind. ``progress()``: per shard,
    each rank's newest applied step."""
    if bound < 0 or step is None:
        return {}
    behind = lag(progress(), world_size, step)
    if behind > bound:
        raise NotReady(
            f"round {round_} cannot be selected yet: the scores are {behind} steps behind step {step}, "
            f"and max_staleness is {bound}; ask again"
        )
    return {"staleness_steps": behind}

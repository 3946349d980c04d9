"""A run's state as listings and filters name it, from its counters."""

from __future__ import annotations

from typing import Any, Literal

RunState = Literal["running", "finished"]


def run_state(info: dict[str, Any]) -> RunState:
    """``finished`` once every round the run was created for is recorded, else ``running``."""
    return "finished" if info.get("rounds_completed", 0) >= info.get("epochs", 0) else "running"


def with_state(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` (a store's ``info()``) with its ``state``."""
    return {**info, "state": run_state(info)}

"""Marks on the store's methods that its shells read.

A method marked :func:`read_only` changes nothing: the Ray shells answer it from the actor's "query"
concurrency group, so a score query never waits behind queued ingests (the store's read lock still
makes every answer come from one state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def read_only(fn: F) -> F:
    """Mark ``fn`` as a method that only reads."""
    fn.__read_only__ = True  # type: ignore[attr-defined]
    return fn


def is_read_only(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (a function, or a bound method of it) was marked :func:`read_only`."""
    return bool(getattr(fn, "__read_only__", False))

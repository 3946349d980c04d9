"""What a call through Ray raised, as its callee raised it.

Ray wraps an exception raised in an actor or task in a ``RayTaskError`` whose text carries the
remote traceback, pid, node address and actor id; :func:`unwrap` gives back the exception the
callee raised (a :class:`~scorer_service.core.errors.CurriculumError` keeps its class and message).
Every Ray caller of the store, the shards and the token table goes through it, the trainers'
endpoint included: that is why the client's import contract allows this module of
``scorer_service.ray`` alone (it imports nothing but Ray).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import ray


def unwrap(error: ray.exceptions.RayTaskError) -> BaseException:
    """The exception the callee raised, without Ray's wrapper."""
    return error.cause if error.cause is not None else error.as_instanceof_cause()


@contextmanager
def callee_errors() -> Iterator[None]:
    """Raise what a Ray call in the block raised as its callee raised it (see :func:`unwrap`)."""
    try:
        yield
    except ray.exceptions.RayTaskError as e:
        raise unwrap(e) from None

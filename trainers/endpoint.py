"""How trainers reach a run's store: calls that wait, and byproduct sends that do not.

:class:`ActorEndpoint` calls the store actor through Ray (trainers that are Ray Train workers or
joined the cluster as drivers). Errors the store raises arrive as the store's own exceptions
(``InvalidBatch``, ``InvalidQuery``, ``NotFound``) with its message, not wrapped in Ray's.
"""

from __future__ import annotations

from typing import Any, Protocol

import ray

from scorer_service.ray.actor import get_store


class Endpoint(Protocol):
    """The store of one run, as a trainer sees it."""

    run: str

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method(*args)`` on the store and wait for its answer."""

    def submit(self, method: str, *args: Any) -> Any:
        """Start ``method(*args)`` without waiting; :meth:`result` waits for it."""

    def result(self, pending: Any) -> Any:
        """Wait for a call from :meth:`submit`; raises the store's error."""


class ActorEndpoint:
    """A run's store actor, looked up by run name on the connected Ray cluster."""

    def __init__(self, run: str, handle: ray.actor.ActorHandle | None = None) -> None:
        self.run = run
        self.handle = handle if handle is not None else get_store(run)

    def call(self, method: str, *args: Any) -> Any:
        return self.result(self.submit(method, *args))

    def submit(self, method: str, *args: Any) -> ray.ObjectRef:
        return getattr(self.handle, method).remote(*args)

    def result(self, pending: ray.ObjectRef) -> Any:
        try:
            return ray.get(pending)
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, ValueError | KeyError):
                raise e.cause from None
            raise

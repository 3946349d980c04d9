"""A run's store actor as a trainer's endpoint (see :mod:`trainers.endpoint`)."""

from __future__ import annotations

from typing import Any

import ray

from scorer_service.ray.actor import get_store


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

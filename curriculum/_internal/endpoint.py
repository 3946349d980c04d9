"""How trainers reach a run's store: calls that wait, and byproduct sends that do not.

Two implementations: :class:`~curriculum._internal.ray_endpoint.ActorEndpoint` calls the store actor through
Ray (Ray Train workers, or processes that joined the cluster as drivers);
:class:`~curriculum.http_endpoint.HttpEndpoint` calls the REST API (trainers that cannot join Ray; it
imports no Ray). Either raises the store's own errors (``InvalidBatch``, ``InvalidQuery`` — both
``ValueError`` — and ``NotFound``) with the store's message.
"""

from __future__ import annotations

from typing import Any, Protocol


class Endpoint(Protocol):
    """The store of one run, as a trainer sees it."""

    run: str

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method(*args)`` on the store and wait for its answer."""

    def submit(self, method: str, *args: Any) -> Any:
        """Start ``method(*args)`` without waiting; :meth:`result` waits for it."""

    def result(self, pending: Any) -> Any:
        """Wait for a call from :meth:`submit`; raises the store's error."""


def endpoint_for(run: Any) -> Endpoint:
    """``run`` as an endpoint: a run name (its store actor on the connected Ray cluster), an object
    carrying an ``endpoint`` (a :class:`~curriculum.run.Run`), or an endpoint itself."""
    if isinstance(run, str):
        from curriculum._internal.ray_endpoint import ActorEndpoint

        return ActorEndpoint(run)
    return getattr(run, "endpoint", run)

"""How trainers reach a run's store: the store's own methods, calls that wait, and byproduct sends
that do not.

Two implementations: :class:`~curriculum._internal.ray_endpoint.ActorEndpoint` calls the store actor
through Ray (Ray Train workers, or processes that joined the cluster as drivers);
:class:`~curriculum.http_endpoint.HttpEndpoint` calls the REST API (trainers that cannot join Ray; it
imports no Ray). Either raises the store's own errors (:mod:`scorer_service.core.errors`:
``InvalidBatch``, ``InvalidQuery``, ``NotFound``, ...) with the store's message.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from scorer_service.core.wire.batch import Ingested
from scorer_service.core.wire.interface import TrainerInterface


class Endpoint(TrainerInterface, Protocol):
    """The store of one run, as a trainer sees it: the methods of
    :class:`~scorer_service.core.wire.interface.TrainerInterface`, each waiting for its answer, and a
    byproduct send that does not wait."""

    run: str

    def send_ingest(self, data: dict[str, Any]) -> Any:
        """Start :meth:`ingest` of ``data`` without waiting; :meth:`ingest_result` waits for it."""
        ...

    def ingest_result(self, pending: Any) -> Ingested:
        """The acknowledgement of a send from :meth:`send_ingest`; raises the store's error."""
        ...


def endpoint_for(run: Any) -> Endpoint:
    """``run`` as an endpoint: a run name (its store actor on the connected Ray cluster), an object
    carrying an ``endpoint`` (a :class:`~curriculum.run.Run`), or an endpoint itself."""
    if isinstance(run, str):
        from curriculum._internal.ray_endpoint import ActorEndpoint

        return ActorEndpoint(run)
    return cast(Endpoint, getattr(run, "endpoint", run))

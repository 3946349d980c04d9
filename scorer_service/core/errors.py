"""Errors the store and the service raise; the REST layer maps :class:`NotFound` to 404,
:class:`Conflict` to 409, :class:`NotReady` to 425, :class:`InvalidBatch` and :class:`InvalidQuery`
to 400, :class:`Unauthorized` to 401 and :class:`Forbidden` to 403, each with its message and its
class name (``{"detail": ..., "type": "NotFound"}``), so a REST client raises the class a caller
through Ray gets."""

from __future__ import annotations


class InvalidBatch(ValueError):
    """A byproduct batch that the store refuses; nothing of it was applied."""


class InvalidQuery(ValueError):
    """A query parameter the store cannot answer (unknown metric, bad range)."""


class Conflict(ValueError):
    """A well-formed request that the store's configuration does not allow (a snapshot of a store
    kept in memory only)."""


class NotReady(Conflict):
    """A round that may not be selected yet: the scores are further behind the trainers than the run's
    ``max_staleness`` allows. Ask again once more byproducts are in."""


class RunExists(Conflict):
    """A run of that name has a live store; creating it again would destroy it."""


class NotFound(KeyError):
    """An unknown sample id, round or run."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class Unauthorized(PermissionError):
    """A request without a bearer token, or with one the service does not know."""


class Forbidden(PermissionError):
    """A known token whose role or runs do not cover the request."""


# What a REST error's ``type`` may name: ValueError is a run's settings that create_run refuses.
ERROR_TYPES: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        InvalidBatch,
        InvalidQuery,
        Conflict,
        NotReady,
        RunExists,
        NotFound,
        Unauthorized,
        Forbidden,
        ValueError,
    )
}

"""Errors the store and the service raise: one hierarchy under :class:`CurriculumError`.

Each also derives from the built-in exception it refines (``ValueError``, ``KeyError``,
``PermissionError``, ``RuntimeError``), so ``except ValueError`` keeps catching a refused batch::

    CurriculumError
    ├── InvalidBatch (ValueError)       400: a byproduct batch the store refuses
    ├── InvalidQuery (ValueError)       400: a query parameter it cannot answer
    ├── Conflict (ValueError)           409: what the store's configuration does not allow
    │   ├── NotReady                    425: a round too far ahead of the scores
    │   └── RunExists                   409: a run of that name is live
    ├── NotFound (KeyError)             404: an unknown sample id, round, run or token
    ├── Unauthorized (PermissionError)  401: no token, or an unknown one
    ├── Forbidden (PermissionError)     403: a token that does not cover the request
    └── StoreUnavailable (RuntimeError) 503: a store that cannot answer now

Every transport raises the class the store raised, with its message: in-process, through Ray (the
Ray shells and the trainers' endpoint drop Ray's wrapper, :mod:`scorer_service.ray.errors`) and over
REST, whose error body names the class (``{"detail": ..., "type": "NotFound"}``) for the client to
raise it again (:data:`ERROR_TYPES`).
"""

from __future__ import annotations


class CurriculumError(Exception):
    """Base of every error the store and the service raise on purpose."""


class InvalidBatch(CurriculumError, ValueError):
    """A byproduct batch that the store refuses; nothing of it was applied."""


class InvalidQuery(CurriculumError, ValueError):
    """A query parameter the store cannot answer (unknown metric, bad range)."""


class Conflict(CurriculumError, ValueError):
    """A well-formed request that the store's configuration does not allow (a snapshot of a store
    kept in memory only)."""


class NotReady(Conflict):
    """A round that may not be selected yet: the scores are further behind the trainers than the run's
    ``max_staleness`` allows. Ask again once more byproducts are in."""


class RunExists(Conflict):
    """A run of that name has a live store; creating it again would destroy it."""


class NotFound(CurriculumError, KeyError):
    """An unknown sample id, round or run."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class Unauthorized(CurriculumError, PermissionError):
    """A request without a bearer token, or with one the service does not know."""


class Forbidden(CurriculumError, PermissionError):
    """A known token whose role or runs do not cover the request."""


class StoreUnavailable(CurriculumError, RuntimeError):
    """The run's store exists but cannot answer now (it died and is restarting, or its node is gone)."""


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
        StoreUnavailable,
        ValueError,
    )
}

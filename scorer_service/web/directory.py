"""How the web layer finds and calls the store of a run, and how store errors become HTTP errors.

``StoreDirectory`` is the seam: ``scorer_service.ray.serve`` passes one that calls Ray actors, tests
and notebooks pass :class:`LocalDirectory` over in-process stores. A call names the store method
it wants by passing it (``await directory.call(run, StoreInterface.top, "dih", 10)``), so its
arguments and answer are those the method declares. Either raises the store's own errors
(:mod:`scorer_service.core.errors`, :class:`StoreUnavailable` among them) or anything else; only
the store's own messages reach a client, everything else is logged here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from fastapi import HTTPException

from scorer_service.core.errors import (
    ERROR_TYPES,
    Conflict,
    InvalidBatch,
    InvalidQuery,
    NotFound,
    NotReady,
    RunExists,
    StoreUnavailable,
)
from scorer_service.core.wire.interface import StoreInterface

CALL_TIMEOUT_S = 10.0
MAX_MESSAGE = 300

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
# A method of the store as a value: StoreInterface.info, StoreInterface.top, ...
StoreMethod = Callable[Concatenate[StoreInterface, P], R]


class ApiError(HTTPException):
    """An HTTP error that names the exception class behind it (``type`` in the answer's body), so
    a client raises that class again."""

    def __init__(
        self,
        status: int,
        detail: str,
        error_type: type[Exception] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, headers=headers)
        self.error_type = error_type.__name__ if error_type is not None else None


class StoreDirectory(Protocol):
    """How the API finds and calls the store of a run."""

    async def runs(self) -> list[str]:
        """Names of the runs with a live store."""

    async def call(self, run: str, method: StoreMethod[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the run's store's ``method`` (a :class:`StoreInterface` method) with ``args``;
        :class:`NotFound` when the run has none."""

    async def delete(self, run: str) -> None:
        """Stop the run's store; :class:`NotFound` when the run has none."""

    async def create(
        self, run: str, n: int, num_classes: int | None, replace: bool, settings: dict[str, Any]
    ) -> None:
        """Create the store of a new run as ``curriculum.create_run`` does: ``ValueError`` for
        settings it refuses, :class:`RunExists` for a live run of that name unless ``replace``."""


# Builds an in-process store: (run, n, num_classes, settings) -> store.
StoreFactory = Callable[[str, int, "int | None", dict[str, Any]], Any]


class LocalDirectory:
    """In-process stores by run name (tests, notebooks); ``factory`` builds the stores of runs
    created over the API (without one, creating a run is a :class:`Conflict`)."""

    def __init__(self, stores: dict[str, Any], factory: StoreFactory | None = None) -> None:
        self.stores = stores
        self.factory = factory

    async def runs(self) -> list[str]:
        return sorted(self.stores)

    async def call(self, run: str, method: StoreMethod[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if run not in self.stores:
            raise NotFound(f"no store for run {run!r}")
        return getattr(self.stores[run], method.__name__)(*args, **kwargs)

    async def delete(self, run: str) -> None:
        if self.stores.pop(run, None) is None:
            raise NotFound(f"no store for run {run!r}")

    async def create(
        self, run: str, n: int, num_classes: int | None, replace: bool, settings: dict[str, Any]
    ) -> None:
        if self.factory is None:
            raise Conflict("this directory holds a fixed set of runs: it cannot create one")
        if run in self.stores and not replace:
            raise RunExists(f'run {run!r} already exists; replace it ("replace": true)')
        self.stores[run] = self.factory(run, n, num_classes, settings)


def one_line(text: str) -> str:
    """``text`` as a client may see it: its first line, printable characters only, bounded."""
    lines = str(text).strip().splitlines() or [""]
    line = "".join(c for c in lines[0] if c.isprintable())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def http_error(e: BaseException, run: str) -> HTTPException:
    """The HTTP error for what calling the store of ``run`` raised, with the store's own message and
    class: 404 for what does not exist, 425 for a round that may not be selected yet, 409 for what its
    configuration does not allow, 400 for a request it refuses; 503 for a store that cannot answer
    now, 500 for anything else (logged here, never sent)."""
    known = next((cls for cls in type(e).__mro__ if ERROR_TYPES.get(cls.__name__) is cls), None)
    if isinstance(e, NotFound):
        return ApiError(404, one_line(str(e)), known)
    if isinstance(e, NotReady):
        return ApiError(425, one_line(str(e)), known)
    if isinstance(e, Conflict):
        return ApiError(409, one_line(str(e)), known)
    if isinstance(e, InvalidQuery | InvalidBatch):
        return ApiError(400, one_line(str(e)), known)
    if isinstance(e, TimeoutError):
        late = f"the store of run {run!r} did not answer within {CALL_TIMEOUT_S:g} s"
        return ApiError(503, late, StoreUnavailable)
    if isinstance(e, StoreUnavailable):
        return ApiError(503, f"the store of run {run!r} is not available now; try again", StoreUnavailable)
    logger.error("the store of run %r failed", run, exc_info=e)
    return HTTPException(500, f"the store of run {run!r} failed; the server log has the details")


async def call_store(
    directory: StoreDirectory, run: str, method: StoreMethod[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """``directory.call`` within :data:`CALL_TIMEOUT_S`, its errors mapped by :func:`http_error`."""
    try:
        return await asyncio.wait_for(directory.call(run, method, *args, **kwargs), CALL_TIMEOUT_S)
    except Exception as e:
        raise http_error(e, run) from None

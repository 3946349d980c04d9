"""How the web layer finds and calls the store of a run, and how store errors become HTTP errors.

``StoreDirectory`` is the seam: ``scorer_service.ray.serve`` passes one that calls Ray actors, tests
and notebooks pass :class:`LocalDirectory` over in-process stores.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fastapi import HTTPException

CALL_TIMEOUT_S = 10.0


class StoreDirectory(Protocol):
    """How the API finds and calls the store of a run."""

    async def runs(self) -> list[str]:
        """Names of the runs with a live store."""

    async def call(self, run: str, method: str, *args: Any) -> Any:
        """Call ``method(*args)`` on the run's store; ``KeyError`` when the run has none."""

    async def delete(self, run: str) -> None:
        """Stop the run's store; ``KeyError`` when the run has none."""


class LocalDirectory:
    """In-process stores by run name (tests, notebooks)."""

    def __init__(self, stores: dict[str, Any]) -> None:
        self.stores = stores

    async def runs(self) -> list[str]:
        return sorted(self.stores)

    async def call(self, run: str, method: str, *args: Any) -> Any:
        if run not in self.stores:
            raise KeyError(f"no store for run {run!r}")
        return getattr(self.stores[run], method)(*args)

    async def delete(self, run: str) -> None:
        if self.stores.pop(run, None) is None:
            raise KeyError(f"no store for run {run!r}")


def error_message(e: BaseException) -> str:
    # Errors raised in a Ray actor arrive wrapped; the first line of the cause is what the user needs.
    text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
    return text.strip().splitlines()[-1] if "Traceback" in text else text


async def call_store(directory: StoreDirectory, run: str, method: str, *args: Any) -> Any:
    """``directory.call`` with the API's error mapping: 404 unknown, 400 bad query, 503 no answer in time."""
    try:
        return await asyncio.wait_for(directory.call(run, method, *args), CALL_TIMEOUT_S)
    except TimeoutError:
        raise HTTPException(
            503, f"the store of run {run!r} did not answer within {CALL_TIMEOUT_S:g} s"
        ) from None
    except KeyError as e:
        raise HTTPException(404, error_message(e)) from None
    except ValueError as e:
        raise HTTPException(400, error_message(e)) from None

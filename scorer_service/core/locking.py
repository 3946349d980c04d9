"""A readers-writer lock: queries read one consistent state while the store's writer changes it; and
the change lock's decorator for the methods that change a shard."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar


class _Changing(Protocol):
    @property
    def _change(self) -> AbstractContextManager[Any]: ...


_Self = TypeVar("_Self", bound=_Changing)
_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def changes(
    method: Callable[Concatenate[_Self, _Params], _Result],
) -> Callable[Concatenate[_Self, _Params], _Result]:
    """A method that changes its object: it runs under the object's change lock (``self._change``), so
    what it logs and applies does not interleave with a change on another thread."""

    @functools.wraps(method)
    def locked(self: _Self, /, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        with self._change:
            return method(self, *args, **kwargs)

    return locked


class ReadWriteLock:
    """Any number of readers, or one writer.

    A waiting writer holds back new readers, so a steady stream of queries cannot starve ingest.
    Readers hold the lock only while they copy what they answer from (a column, a few rows), never
    while they compute or serialize the answer, so a writer waits at most one copy.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

"""Byproduct batches leave the training thread here.

A recorder hands each full buffer of training steps (:class:`~.step_byproducts.Step`) to a
:class:`Sender`, whose own thread turns it into one store batch and sends it: the per-sample columns
built from the steps' tensors (:class:`~.step_byproducts.StepColumns`) and copied to the host,
the step and learning-rate columns, the writer and its sequence number. On CUDA the columns are built
on the stream the steps ran on and copied into pinned host memory with ``non_blocking=True``; this
thread, never the training thread, waits for an event recorded after the copies.

At most ``max_in_flight`` sends are unacknowledged (to a store of shards: that many parts to each
shard), and only one while the store reports it is more than ``max_lag_s`` behind its writers (the
time from a send to its ingest, :mod:`scorer_service.core.load`): then the thread waits for each
acknowledgement before it sends again, and the store's queue holds at most one batch of this
writer. A hand-off waits only while ``queued`` buffers are already waiting for the thread, so the
training thread stalls too rather than letting memory grow when the store falls behind. Sends leave
in hand-off order from one thread (the store needs each writer's steps without gaps).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import torch

from curriculum._internal.endpoint import Endpoint
from curriculum._internal.step_byproducts import Step, StepColumns
from scorer_service.core.wire.batch import COLUMNS

# Columns with a fixed wire type; the others keep float16/float32 and send other floats as float32.
_NUMPY = {name: np.dtype(c.wire) for name, c in COLUMNS.items() if c.wire}
_DTYPES = {name: getattr(torch, dtype.name) for name, dtype in _NUMPY.items()}
_WIRE_FLOATS = (torch.float16, torch.float32)
# A buffer handed to the thread: its round, its steps and the CUDA stream they ran on (None: the CPU).
_Item = tuple[int, list[Step], torch.cuda.Stream | None]


class Sender:
    """The thread that sends one writer's byproduct batches to ``endpoint`` (see the module docstring).

    Errors (a batch the store rejects when ``on_error="raise"``, or any failure to build or send one)
    are kept for the training thread to raise: :meth:`take_error`. With ``on_error="log"`` a rejected
    batch is logged to ``log`` and dropped.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        columns: StepColumns,
        *,
        writer: str,
        rank: int,
        max_in_flight: int,
        on_error: str,
        log: logging.Logger,
        queued: int = 2,
        max_lag_s: float = 2.0,
    ) -> None:
        self.endpoint, self.columns, self.writer, self.rank = endpoint, columns, writer, rank
        self.max_in_flight, self.on_error, self.log = max_in_flight, on_error, log
        self.max_lag_s = max_lag_s
        self.seq = 0
        # The store's lag as its last acknowledgement said, and how long this thread waited for a
        # lagging store before sending (the writer slowed down to the store's pace).
        self.lag_s = 0.0
        self.throttled_s = 0.0
        self._queue: queue.Queue[_Item | threading.Event | None] = queue.Queue(maxsize=queued)
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, round_: int, steps: list[Step]) -> None:
        """Hand over a buffer of steps of round ``round_`` (returns at once unless ``queued`` wait)."""
        loss = steps[0].loss
        # The stream the steps ran on, so the columns are built after them; reading it never synchronizes.
        stream = torch.cuda.current_stream(loss.device) if loss.is_cuda else None
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="curriculum-sender", daemon=True)
            self._thread.start()
        self._queue.put((round_, steps, stream))

    def drain(self) -> None:
        """Wait until every buffer handed over is sent and acknowledged (or failed)."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def take_error(self) -> BaseException | None:
        """The first error since the last call, if any (then forgotten)."""
        with self._error_lock:
            error, self._error = self._error, None
        return error

    def close(self) -> None:
        """Stop the thread once what was handed over is sent (its recorder is gone)."""
        self._closed = True
        with contextlib.suppress(queue.Full):  # a busy thread sees the flag when the queue runs empty
            self._queue.put_nowait(None)

    def _run(self) -> None:
        pending: deque[Any] = deque()  # the endpoint's handles of calls in flight
        while True:
            item = self._queue.get()
            if item is None or isinstance(item, threading.Event):
                while pending:
                    self._collect(pending.popleft())
                if item is None:
                    return
                item.set()
                continue
            try:
                batch = self._batch(*item)
                lagging = self.lag_s > self.max_lag_s
                t0 = time.perf_counter()
                while pending and len(pending) >= (1 if lagging else self.max_in_flight):
                    self._collect(pending.popleft())
                if lagging:
                    self.throttled_s += time.perf_counter() - t0
                batch |= {"sent": time.time(), "queued": len(pending) + 1}
                pending.append(self.endpoint.send_ingest(batch))
            except Exception as e:  # kept for the training thread, which raises it
                self._fail(e)
            if self._closed and self._queue.empty():
                while pending:
                    self._collect(pending.popleft())
                return

    def _collect(self, pending: Any) -> None:
        try:
            self.lag_s = float(self.endpoint.ingest_result(pending).lag_s)
        except ValueError as e:  # the store refused the batch; its message says why
            if self.on_error == "raise":
                self._fail(e)
            else:
                self.log.warning("the store rejected a byproduct batch: %s", e)
        except Exception as e:
            self._fail(e)

    def _fail(self, error: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = error

    def _batch(self, round_: int, steps: list[Step], stream: torch.cuda.Stream | None) -> dict[str, Any]:
        counts = [len(s.ids) for s in steps]
        if stream is None:
            columns = {name: _host(parts, name) for name, parts in self.columns(steps).items()}
        else:
            with torch.cuda.stream(stream):
                staged = {name: _stage(parts, name) for name, parts in self.columns(steps).items()}
                # Blocking: this thread sleeps until the copies are done instead of spinning on a core.
                copied = torch.cuda.Event(blocking=True)
                copied.record(stream)
            copied.synchronize()
            columns = {name: t.numpy() if isinstance(t, torch.Tensor) else t for name, t in staged.items()}
        columns["sample_id"] = _narrow(columns["sample_id"])
        step = _narrow(np.asarray([s.step for s in steps], dtype=_NUMPY["step"]))
        batch = {
            **columns,
            "step": np.repeat(step, counts),
            "lr": np.repeat(np.asarray([float(s.lr) for s in steps], dtype=_NUMPY["lr"]), counts),
            "round": round_,
            "rank": self.rank,
            "writer": self.writer,
            "seq": self.seq,
        }
        self.seq += 1
        return batch


def _narrow(values: np.ndarray) -> np.ndarray:
    """Integers as int32 when they fit (the store takes any integer type): a default batch of 4096 then
    stays under Ray's 100 KiB limit for arguments passed inline; larger ones go through the object
    store, at about three times the cost per call on both sides."""
    if values.size and np.iinfo(np.int32).min <= values.min() and values.max() <= np.iinfo(np.int32).max:
        return values.astype(np.int32)
    return values


def _dtype(name: str, part: torch.Tensor) -> torch.dtype:
    return _DTYPES.get(name) or (part.dtype if part.dtype in _WIRE_FLOATS else torch.float32)


def _host(parts: list[Any], name: str) -> np.ndarray:
    """Per-step parts (host tensors, numpy arrays, sequences) concatenated into one numpy column."""
    arrays = []
    for p in parts:
        if isinstance(p, torch.Tensor):
            arrays.append(p.to(_dtype(name, p)).numpy())
        else:
            arrays.append(np.asarray(p, dtype=_NUMPY.get(name)))
    return np.concatenate(arrays)


def _stage(parts: list[Any], name: str) -> np.ndarray | torch.Tensor:
    """A column of parts on a CUDA device, concatenated there and copied without waiting into pinned
    host memory (valid once the caller's event has completed); a column all on the host, as it is."""
    on_device = [p for p in parts if isinstance(p, torch.Tensor) and p.is_cuda]
    if not on_device:
        return _host(parts, name)
    device = on_device[0].device
    values = torch.cat([torch.as_tensor(p, device=device) for p in parts])
    values = values.to(_dtype(name, values))
    pinned = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
    pinned.copy_(values, non_blocking=True)
    return pinned

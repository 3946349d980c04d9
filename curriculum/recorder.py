"""The recorder: streams what the training forward pass already computed to the run's store.

The training thread only appends: each ``observe`` keeps the step's tensors as they are (no copy,
no detach, no device synchronization) until ``flush_samples`` samples are buffered or the oldest of
them was observed ``flush_every_s`` seconds ago, then hands the buffer to a background
:class:`~curriculum._internal.sender.Sender`, which builds the batch (detached; correctness and sketches from
the logits, device-to-host copies) and sends it, at most ``max_in_flight`` sends outstanding. The
time bound brings a round's observations to the store while the round runs, however small a rank's
share of it is; at large ``flush_samples`` it adds one clock read per ``observe``. The
optimizer step and learning rate of each observation come from the optimizer (or are given).
``end_round`` is the round's barrier: every rank's byproducts are in the store before any rank asks
for the next round's slice.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch

from curriculum._internal.endpoint import Endpoint
from curriculum._internal.sender import Sender
from curriculum._internal.step_byproducts import OutputByproducts, Step, StepColumns

log = logging.getLogger(__name__)


class RoundPosition(Protocol):
    """What a recorder reads of its rank's sampler (a :class:`~curriculum.sampler.RoundSampler`):
    where the rank stands in the run, and the run's store."""

    endpoint: Endpoint
    config: dict[str, Any]
    rank: int
    round: int | None
    completed: int | None
    step: int

    @property
    def epochs(self) -> int: ...

    @property
    def max_staleness(self) -> int: ...

    def barrier(self) -> None: ...


class Recorder:
    """Byproducts of one rank's training steps, sent to the store of its sampler's run.

    Create it with :meth:`RoundSampler.recorder`. ``on_error="raise"`` (default) raises a batch the
    store rejects in the trainer, with the store's message, at the next send or flush;
    ``on_error="log"`` logs it and drops the batch. :attr:`flush_seconds` is how long each flush
    waited for what was still in flight. While the store (any shard of it) reports being more than
    ``max_lag_s`` behind its writers, sends wait for each acknowledgement (:attr:`throttled_seconds`).
    A buffer is handed off once it holds ``flush_samples`` samples or, at the next ``observe``, once
    its oldest step is ``flush_every_s`` seconds old (None: only by size).

    Args:
        sampler: the sampler of this rank; the recorder sends to its run's store.
        optimizer: its steps number the byproducts and give their learning rate (hooked on
            ``optimizer.step``); None: every :meth:`observe` passes ``step=`` and ``lr=``.
        flush_samples: samples per batch sent.
        flush_every_s: the age at which a buffer is sent regardless of its size; None: only by size.
        max_in_flight: batches sent but not yet acknowledged before a send waits.
        on_error: ``"raise"`` or ``"log"`` a batch the store rejects.
        max_lag_s: how far behind its writers the store may report being before sends wait.

    Raises:
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"log"``, or ``flush_every_s`` is not
            positive.
        InvalidBatch: with ``on_error="raise"``, a batch the store rejected, at the next send or
            flush.

    Example::

        recorder = sampler.recorder(optimizer)
        for ids, x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y, reduction="none")
            loss.mean().backward()
            optimizer.step()
            recorder.observe(ids, loss, logits=logits, labels=y)
        recorder.end_round({"val_acc": acc})
    """

    def __init__(
        self,
        sampler: RoundPosition,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        flush_samples: int = 4096,
        flush_every_s: float | None = 2.0,
        max_in_flight: int = 8,
        on_error: str = "raise",
        max_lag_s: float = 2.0,
    ) -> None:
        if on_error not in ("raise", "log"):
            raise ValueError(f"on_error must be 'raise' or 'log', got {on_error!r}")
        if flush_every_s is not None and not flush_every_s > 0:
            raise ValueError(f"flush_every_s must be > 0 or None, got {flush_every_s!r}")
        self.sampler, self.endpoint = sampler, sampler.endpoint
        self.flush_samples, self.max_in_flight, self.on_error = flush_samples, max_in_flight, on_error
        self.flush_every_s = math.inf if flush_every_s is None else flush_every_s
        cfg = sampler.config
        self.wants_correct = bool(cfg.get("correct", True))
        self.outputs = (
            OutputByproducts(cfg["num_classes"], cfg["sketch_dim"], cfg["seed"])
            if cfg.get("output_width")
            else None
        )
        self.embedding_dim = int(cfg.get("embedding_dim") or 0)
        # A fresh writer id per process: a restarted worker starts its sequence again at 0.
        self.writer = f"rank{sampler.rank}-{uuid.uuid4().hex[:12]}"
        columns = StepColumns(
            correct=self.wants_correct,
            outputs=self.outputs,
            embedding_dim=self.embedding_dim,
            seed=cfg["seed"],
        )
        self._sender = Sender(
            self.endpoint,
            columns,
            writer=self.writer,
            rank=sampler.rank,
            max_in_flight=max_in_flight,
            on_error=on_error,
            log=log,
            max_lag_s=max_lag_s,
        )
        weakref.finalize(self, self._sender.close)
        self.sent_samples = 0
        self.flush_seconds: list[float] = []
        self._last_step: int | None = None
        self._last_lr: float | None = None
        self._steps: list[Step] = []
        self._buffered = 0
        self._due = math.inf  # when the buffer is handed off whatever its size
        self._round: int | None = None
        if optimizer is not None:
            optimizer.register_step_pre_hook(self._before_step)
            optimizer.register_step_post_hook(self._after_step)

    def _before_step(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        self._last_lr = _snapshot(optimizer.param_groups[0]["lr"])

    def _after_step(self, *_: Any) -> None:
        self._last_step = self.sampler.step
        self.sampler.step += 1

    def observe(
        self,
        ids: Any,
        loss: torch.Tensor,
        *,
        logits: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        correct: torch.Tensor | None = None,
        embeddings: torch.Tensor | None = None,
        step: int | None = None,
        lr: float | None = None,
        extra: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """Record one training step's per-sample byproducts (call it after ``optimizer.step()``).

        ``loss``: the unreduced per-sample loss of the forward pass the gradient came from. Tensors may
        still be attached to the autograd graph: they are kept as given and detached on the sender's
        thread (after ``backward()`` the graph holds no activations, so keeping it costs little).
        ``correct`` is computed from ``logits`` and ``labels`` when the run wants it and it is not
        given; DoCL runs need ``logits`` and ``labels``; diversity needs ``embeddings`` (features of
        any width, projected here to the run's sketch). ``step`` and ``lr`` default to the last
        optimizer step's. ``extra`` holds further per-sample columns (instance data parameters).
        """
        if self.sampler.round is None:
            raise ValueError("observe() before the round started: call sampler.set_epoch(round) first")
        step = self._last_step if step is None else step
        lr = self._last_lr if lr is None else _snapshot(lr)
        if step is None or lr is None:
            raise ValueError(
                "no optimizer step to attribute this to: observe() after optimizer.step(), "
                "create the recorder with the optimizer, or pass step= and lr="
            )
        if self.wants_correct and correct is None and (logits is None or labels is None):
            raise ValueError("this run records correctness: pass correct=, or logits= and labels=")
        if self.outputs is not None and (logits is None or labels is None):
            raise ValueError("this run's method scores output changes: pass logits= and labels=")
        if self.embedding_dim and embeddings is None:
            raise ValueError(
                "this run keeps embedding sketches: pass embeddings= (e.g. penultimate features)"
            )
        round_ = self.sampler.round
        if round_ != self._round:
            self._hand_off()  # a batch never spans two rounds
            self._raise_error()
            self._round = round_
        if not isinstance(ids, np.ndarray | torch.Tensor):
            ids = np.asarray(ids, dtype=np.int64)
        now = time.monotonic()
        if not self._steps:
            self._due = now + self.flush_every_s
        self._steps.append(Step(ids, loss, step, lr, logits, labels, correct, embeddings, extra))
        self._buffered += ids.shape[0]
        if self._buffered >= self.flush_samples or now >= self._due:
            self._hand_off()
            self._raise_error()

    @property
    def throttled_seconds(self) -> float:
        """How long sends waited for a store that was more than ``max_lag_s`` behind."""
        return self._sender.throttled_s

    def _hand_off(self) -> None:
        if self._steps:
            assert self._round is not None  # steps are buffered within a round
            self._sender.put(self._round, self._steps)
            self.sent_samples += self._buffered
            self._steps, self._buffered = [], 0

    def _raise_error(self) -> None:
        """Raise what the sender ran into since the last check (a rejected batch, a failed send)."""
        error = self._sender.take_error()
        if error is not None:
            raise error

    def flush(self) -> int:
        """Send what is buffered and wait until the store has applied every send; returns samples sent."""
        t0 = time.perf_counter()
        self._hand_off()
        self._sender.drain()
        self.flush_seconds.append(time.perf_counter() - t0)
        self._raise_error()
        return self.sent_samples

    def end_round(self, metrics: Mapping[str, float] | None = None) -> None:
        """End the current round on every rank: flush, wait for all ranks, record rank 0's ``metrics``
        (numbers: test accuracy, train loss, ...) with the round, and wait again.

        In a run with ``max_staleness`` (but its last round) the ranks do not wait: the buffer is sent
        on in the background, rank 0 records the metrics, and the next round's :meth:`set_epoch` waits
        only until the store's scores are close enough to this step."""
        s = self.sampler
        wait = s.max_staleness < 0 or s.round is None or s.round >= s.epochs - 1
        if wait:
            self.flush()
            s.barrier()
        else:
            self._hand_off()
            self._raise_error()
        if s.rank == 0:
            assert s.round is not None, "end_round() before the round started"
            self.endpoint.record_round(s.round, {k: v for k, v in (metrics or {}).items()})
        if wait:
            s.barrier()
        s.completed = s.round


def _snapshot(lr: Any) -> Any:
    """A learning rate as of now: a tensor one (schedulers may update it in place) is copied on its
    device, without a synchronization; the sender reads it."""
    return lr.detach().clone() if isinstance(lr, torch.Tensor) else lr

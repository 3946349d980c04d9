"""The recorder: streams what the training forward pass already computed to the run's store.

Per-sample byproducts stay on their device in a buffer and leave it in sends of ``flush_samples``
or more, at most ``max_in_flight`` sends outstanding; the optimizer step and learning rate of each
observation come from the optimizer (or are given). ``end_round`` is the round's barrier: every
rank's byproducts are in the store before any rank asks for the next round's shard.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainers.byproducts import EmbeddingSketch, OutputByproducts

if TYPE_CHECKING:
    from trainers.sampler import RoundSampler

log = logging.getLogger(__name__)
_CORE = ("sample_id", "loss", "step", "lr")


def _numpy_ids(ids: Any) -> np.ndarray:
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64)


class Recorder:
    """Byproducts of one rank's training steps, sent to the store of its sampler's run.

    Create it with :meth:`RoundSampler.recorder`. ``on_error="raise"`` (default) raises a batch the
    store rejects in the trainer, with the store's message, at the next send or flush;
    ``on_error="log"`` logs it and drops the batch.
    """

    def __init__(
        self,
        sampler: RoundSampler,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        flush_samples: int = 4096,
        max_in_flight: int = 8,
        on_error: str = "raise",
    ) -> None:
        if on_error not in ("raise", "log"):
            raise ValueError(f"on_error must be 'raise' or 'log', got {on_error!r}")
        self.sampler, self.endpoint = sampler, sampler.endpoint
        self.flush_samples, self.max_in_flight, self.on_error = flush_samples, max_in_flight, on_error
        cfg = sampler.config
        self.wants_correct = bool(cfg.get("correct", True))
        self.outputs = (
            OutputByproducts(cfg["num_classes"], cfg["sketch_dim"], cfg["seed"])
            if cfg.get("output_width")
            else None
        )
        self.embedding_dim = int(cfg.get("embedding_dim") or 0)
        self._embed: EmbeddingSketch | None = None
        # A fresh writer id per process: a restarted worker starts its sequence again at 0.
        self.writer = f"rank{sampler.rank}-{uuid.uuid4().hex[:12]}"
        self.seq = 0
        self.sent_samples = 0
        self._last_step: int | None = None
        self._last_lr: float | None = None
        self._buf: dict[str, list] = {k: [] for k in _CORE}
        self._counts: list[int] = []
        self._buffered = 0
        self._round: int | None = None
        self._pending: deque = deque()
        if optimizer is not None:
            optimizer.register_step_pre_hook(self._before_step)
            optimizer.register_step_post_hook(self._after_step)

    def _before_step(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        self._last_lr = float(optimizer.param_groups[0]["lr"])

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

        ``loss``: the unreduced per-sample loss of the forward pass the gradient came from.
        ``correct`` is computed from ``logits`` and ``labels`` when the run wants it and it is not
        given; DoCL runs need ``logits`` and ``labels``; diversity needs ``embeddings`` (features of
        any width, projected here to the run's sketch). ``step`` and ``lr`` default to the last
        optimizer step's. ``extra`` holds further per-sample columns (instance data parameters).
        """
        if self.sampler.round is None:
            raise ValueError("observe() before the round started: call sampler.set_epoch(round) first")
        step = self._last_step if step is None else step
        lr = self._last_lr if lr is None else lr
        if step is None or lr is None:
            raise ValueError(
                "no optimizer step to attribute this to: observe() after optimizer.step(), "
                "create the recorder with the optimizer, or pass step= and lr="
            )
        columns: dict[str, torch.Tensor] = dict(extra or {})
        if self.wants_correct:
            if correct is None:
                if logits is None or labels is None:
                    raise ValueError("this run records correctness: pass correct=, or logits= and labels=")
                correct = logits.argmax(1) == labels
            columns["correct"] = correct.detach()
        # Label-issue reports name the label trained on and the model's prediction.
        if labels is not None:
            columns["label"] = labels.detach()
        if logits is not None:
            columns["predicted"] = logits.detach().argmax(1)
        if self.outputs is not None:
            if logits is None or labels is None:
                raise ValueError("this run's method scores output changes: pass logits= and labels=")
            columns |= self.outputs(logits, labels)
        if self.embedding_dim:
            if embeddings is None:
                raise ValueError(
                    "this run keeps embedding sketches: pass embeddings= (e.g. penultimate features)"
                )
            if self._embed is None:
                self._embed = EmbeddingSketch(
                    embeddings[0].numel(), self.embedding_dim, self.sampler.config["seed"]
                )
            columns["embedding"] = self._embed(embeddings)
        self._add(self.sampler.round, int(step), float(lr), _numpy_ids(ids), loss.detach(), columns)

    def _add(
        self, round_: int, step: int, lr: float, ids: np.ndarray, loss: torch.Tensor, columns: dict
    ) -> None:
        if self._round is not None and round_ != self._round:
            self._send()
        self._round = round_
        buf = self._buf
        buf["sample_id"].append(ids)
        buf["loss"].append(loss)
        # Per-step scalars, expanded to per-sample columns once per send rather than once per step.
        buf["step"].append(step)
        buf["lr"].append(lr)
        self._counts.append(len(ids))
        for name, value in columns.items():
            buf.setdefault(name, []).append(value)
        self._buffered += len(ids)
        if self._buffered >= self.flush_samples:
            self._send()

    def _send(self) -> None:
        if not self._buffered:
            return
        b = self._buf
        batch = {
            "sample_id": np.concatenate(b["sample_id"]).astype(np.int64, copy=False),
            "loss": torch.cat(b["loss"]).to("cpu", torch.float32).numpy(),
            "step": np.repeat(np.asarray(b["step"], dtype=np.int64), self._counts),
            "lr": np.repeat(np.asarray(b["lr"], dtype=np.float64), self._counts),
            **{name: torch.cat(v).cpu().numpy() for name, v in b.items() if name not in _CORE and v},
            "round": int(self._round),
            "rank": self.sampler.rank,
            "writer": self.writer,
            "seq": self.seq,
        }
        for v in b.values():
            v.clear()
        self._counts.clear()
        self.seq += 1
        self.sent_samples += self._buffered
        self._buffered = 0
        while len(self._pending) >= self.max_in_flight:
            self._wait(self._pending.popleft())
        self._pending.append(self.endpoint.submit("ingest", batch))

    def _wait(self, pending: Any) -> None:
        try:
            self.endpoint.result(pending)
        except ValueError as e:  # the store refused the batch; its message says why
            if self.on_error == "raise":
                raise
            log.warning("the store rejected a byproduct batch: %s", e)

    def flush(self) -> int:
        """Send what is buffered and wait until the store has applied every send; returns samples sent."""
        self._send()
        while self._pending:
            self._wait(self._pending.popleft())
        return self.sent_samples

    def end_round(self, metrics: Mapping[str, float] | None = None) -> None:
        """End the current round on every rank: flush, wait for all ranks, record rank 0's ``metrics``
        (numbers: test accuracy, train loss, ...) with the round, and wait again."""
        self.flush()
        s = self.sampler
        s.barrier()
        if s.rank == 0:
            self.endpoint.call("record_round", s.round, {k: v for k, v in (metrics or {}).items()})
        s.barrier()
        s.completed = s.round

"""The trainer's side of the store: batched, asynchronous, bounded byproduct streaming."""

from __future__ import annotations

import uuid

import numpy as np
import ray
import torch

_CORE = ("sample_id", "loss", "correct", "step", "lr")


class StoreClient:
    """Buffers per-sample byproducts and sends them to the store in large fire-and-forget calls.

    Tensors stay on their device in the buffer and are copied to host once per send, so a GPU
    trainer synchronizes once per ``flush_samples`` samples rather than once per step. At most
    ``max_in_flight`` calls are outstanding; a further send first waits for the oldest, which
    also surfaces a store-side rejection as an exception in the trainer.
    """

    def __init__(
        self,
        store: ray.actor.ActorHandle,
        rank: int,
        *,
        flush_samples: int = 4096,
        max_in_flight: int = 8,
        writer: str | None = None,
    ) -> None:
        self.store = store
        self.rank = rank
        self.flush_samples = flush_samples
        self.max_in_flight = max_in_flight
        # A fresh writer id per process: a restarted worker starts its sequence again at 0.
        self.writer = writer or f"rank{rank}-{uuid.uuid4().hex[:12]}"
        self.seq = 0
        self.sent_samples = 0
        self._round: int | None = None
        self._buf: dict[str, list] = {k: [] for k in _CORE}
        self._buffered = 0
        self._counts: list[int] = []
        self._in_flight: list[ray.ObjectRef] = []

    def add(
        self,
        round_: int,
        step: int,
        lr: float,
        ids: np.ndarray,
        loss: torch.Tensor,
        correct: torch.Tensor,
        extra: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Queue one training step's byproducts (tensors may live on the GPU).

        ``extra`` holds optional per-sample columns (sketches, embeddings, data parameters), one
        row per sample; a column must be sent with every step or never.
        """
        if self._round is not None and round_ != self._round:
            self._send()
        self._round = round_
        m = len(ids)
        buf = self._buf
        buf["sample_id"].append(ids)
        buf["loss"].append(loss.detach())
        buf["correct"].append(correct.detach())
        # Per-step scalars, expanded to per-sample columns once per send rather than once per step.
        buf["step"].append(step)
        buf["lr"].append(lr)
        self._counts.append(m)
        if extra:
            for name, value in extra.items():
                buf.setdefault(name, []).append(value.detach())
        self._buffered += m
        if self._buffered >= self.flush_samples:
            self._send()

    def _send(self) -> None:
        if not self._buffered:
            return
        b = self._buf
        batch = {
            "sample_id": np.concatenate(b["sample_id"]).astype(np.int64, copy=False),
            "loss": torch.cat(b["loss"]).to("cpu", torch.float32).numpy(),
            "correct": torch.cat(b["correct"]).to("cpu", torch.bool).numpy(),
            "step": np.repeat(np.asarray(b["step"], dtype=np.int64), self._counts),
            "lr": np.repeat(np.asarray(b["lr"], dtype=np.float64), self._counts),
            **{name: torch.cat(b[name]).cpu().numpy() for name in b if name not in _CORE},
            "round": int(self._round),
            "rank": self.rank,
            "writer": self.writer,
            "seq": self.seq,
        }
        for v in b.values():
            v.clear()
        self._counts.clear()
        self.seq += 1
        self.sent_samples += self._buffered
        self._buffered = 0
        if len(self._in_flight) >= self.max_in_flight:
            ready, self._in_flight = ray.wait(
                self._in_flight, num_returns=len(self._in_flight) - self.max_in_flight + 1
            )
            ray.get(ready)
        self._in_flight.append(self.store.ingest.remote(batch))

    def flush(self) -> int:
        """Send what is buffered and wait until the store has applied every call; returns samples sent."""
        self._send()
        ray.get(self._in_flight)
        self._in_flight = []
        return self.sent_samples

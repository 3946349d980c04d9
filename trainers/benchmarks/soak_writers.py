"""The soak's writers: trainer processes streaming byproduct batches into one store at full speed.

Each writer sends its own id range epoch after epoch the way ``curriculum.recorder.Recorder`` does
(fire-and-forget ``ingest``, a bounded window of calls in flight); the soak and the group-commit sweep
(:mod:`trainers.benchmarks.fsync_sweep`) both run them.
"""

from __future__ import annotations

import os
import time
from typing import Any

# Before ``import ray``: the token file and usage reporting are not wanted for a throwaway cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import ray  # noqa: E402

N = 1_280_000  # an ImageNet-sized store
WRITERS = 2
STEP_SAMPLES = 256  # per rank and optimizer step
BATCH = 4096  # the Recorder's default flush_samples
WINDOW = 8  # the Recorder's default max_in_flight
BASE_LR = 0.1
LR_PERIOD_STEPS = 50_000  # a cosine cycle long enough that the rate changes slowly, as in training
NAMESPACE = "bench-soak"
RUN = "bench-soak"


def lr_at(steps: np.ndarray) -> np.ndarray:
    """Periodic cosine with a floor: a pure function of the step, so every writer reports the same rate
    for a step without knowing how long the run lasts."""
    phase = (steps % LR_PERIOD_STEPS) / LR_PERIOD_STEPS
    return BASE_LR * (0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * phase)))


class Writer:
    """One trainer process: streams epochs over its own id range until the deadline."""

    def __init__(self, rank: int, world: int, batch_size: int, seed: int = 0) -> None:
        self.rank = rank
        self.shard = N // world
        self.lo = rank * self.shard
        self.batch_size = batch_size
        self.steps_per_epoch = self.shard // STEP_SAMPLES
        self.rng = np.random.default_rng([seed, rank, world])
        self.writer = f"soak-rank{rank}"

    def ready(self) -> bool:
        return True

    def _epoch(self, epoch: int) -> dict[str, np.ndarray]:
        shard = self.shard
        step = epoch * self.steps_per_epoch + np.arange(shard, dtype=np.int64) // STEP_SAMPLES
        # Losses shrink over the first epochs and correctness follows the loss, as a classifier's would.
        loss = (self.rng.exponential(2.5, shard) * (0.2 + 0.8 * 0.9**epoch)).astype(np.float32)
        return {
            "sample_id": self.lo + self.rng.permutation(shard).astype(np.int64),
            "loss": loss,
            "correct": loss < 1.0,
            "step": step,
            "lr": lr_at(step),
        }

    def stream(self, store: ray.actor.ActorHandle, start_at: float, stop_at: float, window: int) -> dict:
        """Send batches with a bounded window until ``stop_at``, then wait for every reply.

        Each call's latency (sent to acknowledged) is taken when the writer sees its reply: it waits for
        the first reply whenever the window is full, which is most of the time at full speed.
        """
        while (delay := start_at - time.time()) > 0:
            time.sleep(delay)
        t0 = time.time()
        in_flight: list[ray.ObjectRef] = []
        sent_at: dict[ray.ObjectRef, float] = {}
        latencies: list[tuple[float, float]] = []  # (sent, seconds to the acknowledgement)

        def acknowledged(refs: list[ray.ObjectRef]) -> int:
            now = time.time()
            latencies.extend((sent_at[r], now - sent_at.pop(r)) for r in refs)
            return sum(r.duplicate for r in ray.get(refs))  # surfaces a rejected batch, as the Recorder does

        sent = seq = epoch = 0
        duplicates = 0
        while time.time() < stop_at:
            cols = self._epoch(epoch)
            # A batch never crosses an epoch (the Recorder flushes on a round change), so the last is short.
            for a in range(0, self.shard, self.batch_size):
                if time.time() >= stop_at:
                    break
                b = min(a + self.batch_size, self.shard)
                batch: dict[str, Any] = {k: v[a:b].copy() for k, v in cols.items()}
                batch |= {"round": epoch, "rank": self.rank, "writer": self.writer, "seq": seq}
                while len(in_flight) >= window:
                    ready, in_flight = ray.wait(in_flight, num_returns=1)
                    duplicates += acknowledged(ready)
                ref = store.ingest.remote(batch)
                sent_at[ref] = time.time()
                in_flight.append(ref)
                sent += b - a
                seq += 1
            epoch += 1
        while in_flight:
            ready, in_flight = ray.wait(in_flight, num_returns=1)
            duplicates += acknowledged(ready)
        return {
            "latencies": latencies,
            "rank": self.rank,
            "start": t0,
            "end": time.time(),
            "samples": sent,
            "batches": seq,
            "epochs": epoch,
            "duplicates": duplicates,
        }


WriterActor = ray.remote(num_cpus=1)(Writer)

"""Training with no store at all: every sample every round, in a seeded per-rank order.

This is the floor a run's own costs (selection, streaming, barriers) are measured against: the same
loop (:mod:`trainers.loop`) with :class:`PlainSampler` in place of the
:class:`~curriculum.sampler.RoundSampler`, and a recorder that sends no byproducts (``--plain``); rank
0 hands each round's metrics to the driver's :class:`RoundLog`, one call per round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import ray
import torch

from curriculum._internal.distributed import default_barrier, rank_and_world


class PlainSampler(torch.utils.data.Sampler[int]):
    """This rank's equal share of all ``n`` samples each round, like ``DistributedSampler`` (the last
    ``n mod world_size`` of a round's permutation are left out so that shares stay equal)."""

    def __init__(self, n: int, epochs: int, *, run: str, seed: int = 0) -> None:
        self.n, self.epochs, self.seed, self.run = n, epochs, seed, run
        self.rank, self.world_size = rank_and_world()
        self._barrier = default_barrier(self.world_size)
        self.start_round, self.step, self.completed = 0, 0, -1
        self.round: int | None = None
        self.ids = np.zeros(0, dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Take this rank's share of round ``epoch``'s permutation of every sample."""
        equal = self.n - self.n % self.world_size
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)[:equal]
        self.ids = np.sort(order[self.rank :: self.world_size])
        self.round = epoch

    def __iter__(self) -> Iterator[int]:
        assert self.round is not None, "set_epoch() first"
        order = np.random.default_rng([self.seed, self.round, self.rank]).permutation(len(self.ids))
        return iter(self.ids[order].tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def weights(self, ids: Any, device: torch.device | str | None = None) -> torch.Tensor:
        """Weight 1 for every sample (no selection reweights them)."""
        return torch.ones(len(ids), device=device)

    def barrier(self) -> None:
        self._barrier()

    def recorder(self, optimizer: torch.optim.Optimizer | None = None, **_: Any) -> PlainRecorder:
        return PlainRecorder(self)

    def state_dict(self) -> dict[str, Any]:
        return {"run": self.run, "round": self.completed, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.completed, self.step = int(state["round"]), int(state["step"])
        self.start_round = self.completed + 1


class PlainRecorder:
    """Counts optimizer steps and ends rounds at a barrier; rank 0 logs the round's metrics."""

    def __init__(self, sampler: PlainSampler) -> None:
        self.sampler = sampler
        self._log: ray.actor.ActorHandle | None = None  # looked up once: each lookup asks Ray's GCS

    def observe(self, ids: Any, loss: torch.Tensor, **_: Any) -> None:
        self.sampler.step += 1

    def end_round(self, metrics: Mapping[str, float] | None = None) -> None:
        s = self.sampler
        s.barrier()
        if s.rank == 0:
            if self._log is None:
                self._log = ray.get_actor(round_log_name(s.run), namespace=NAMESPACE)
            ray.get(self._log.add.remote(dict(metrics or {})))
        s.completed = s.round if s.round is not None else -1


NAMESPACE = "curriculum"


def round_log_name(run: str) -> str:
    return f"plain-rounds:{run}"


@ray.remote(num_cpus=0)
class RoundLog:
    """The metrics of a plain run's finished rounds, in order."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, float]] = []

    def add(self, metrics: dict[str, float]) -> None:
        self.rounds.append(metrics)

    def all(self) -> list[dict[str, float]]:
        return self.rounds

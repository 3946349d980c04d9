"""The sampler: which samples this rank trains on in each round, as a ``torch.utils.data.Sampler``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from curriculum._internal.distributed import default_barrier, rank_and_world
from curriculum._internal.endpoint import Endpoint, endpoint_for
from curriculum.recorder import Recorder
from scorer_service.core.errors import NotReady

# How long a rank waits for the other ranks' byproducts of a run with max_staleness.
STALENESS_WAIT_S = 600.0


class RoundSampler(torch.utils.data.Sampler[int]):
    """This rank's equal, disjoint slice of each round's selection, in a seeded per-rank order.

    ``run`` is a run name (its store is found on the connected Ray cluster), a
    :class:`~curriculum.run.Run` or an endpoint (:class:`~curriculum.http_endpoint.HttpEndpoint` for
    trainers outside Ray). Rank and world size come from Ray Train's context, ``torch.distributed`` or
    torchrun's environment unless given; ``barrier`` defaults to ``torch.distributed.barrier``.

    :meth:`set_epoch` (``round``) fetches the round's slice; the first call of a sampler starts a
    training attempt at that round, so rank 0 first rewinds the store to the end of the round
    before it (what a lost attempt recorded later is forgotten) and every rank waits for that.
    :meth:`state_dict` / :meth:`load_state_dict` carry the position through the user's own
    checkpoint; :attr:`start_round` is where a resumed loop continues.

    Args:
        run: a run name, a :class:`~curriculum.run.Run` or an endpoint.
        rank: this process's rank (default: from Ray Train, ``torch.distributed`` or torchrun).
        world_size: the number of ranks (default: as ``rank``).
        shuffle: visit this rank's slice in a seeded random order (per round and rank).
        seed: the order's seed (default: the run's ``seed``).
        barrier: waits for every rank (default: none for one rank, else
            ``torch.distributed.barrier``).

    Raises:
        NotFound: no store for the named run.
        ValueError: several ranks, no ``barrier`` and no ``torch.distributed`` process group (at the
            first :meth:`set_epoch`).
        TimeoutError: :meth:`set_epoch` on a run with ``max_staleness`` whose scores stay too far
            behind this rank's steps for 600 s.

    Example::

        sampler = curriculum.RoundSampler("cifar-dihcl")
        loader = DataLoader(curriculum.WithIds(train_set), batch_size=256, sampler=sampler)
        for rnd in range(sampler.start_round, sampler.epochs):
            sampler.set_epoch(rnd)
            for ids, x, y in loader:
                ...
    """

    def __init__(
        self,
        run: Any,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        barrier: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint: Endpoint = endpoint_for(run)
        self.rank, self.world_size = rank_and_world(rank, world_size)
        self.config: dict[str, Any] = self.endpoint.info().config
        self.shuffle = shuffle
        self.seed = self.config["seed"] if seed is None else seed
        self._barrier = barrier
        self.start_round = 0
        # Global optimizer steps taken so far (the next step's number); the recorder advances it.
        self.step = 0
        self.round: int | None = None
        self.completed: int | None = -1  # None: a round was ended before any began
        self.ids = np.zeros(0, dtype=np.int64)
        self._sorter = np.zeros(0, dtype=np.int64)
        self._weights = np.zeros(0, dtype=np.float32)
        self._uniform = True
        self._started = False

    @property
    def run(self) -> str:
        return self.endpoint.run

    @property
    def epochs(self) -> int:
        """The run's number of rounds."""
        return int(self.config["epochs"])

    def barrier(self) -> None:
        """Wait until every rank arrives."""
        if self._barrier is None:
            self._barrier = default_barrier(self.world_size)
        self._barrier()

    def set_epoch(self, epoch: int) -> None:
        """Fetch this rank's slice of round ``epoch`` (rounds are the sampler's epochs)."""
        if not self._started:
            if epoch < self.start_round:
                raise ValueError(
                    f"this sampler resumes at round {self.start_round}; starting at round {epoch} would "
                    "rewind the store to before the checkpoint it was loaded from"
                )
            if self.rank == 0 and not self.endpoint.rewind(epoch - 1):
                raise RuntimeError(
                    f"the store of run {self.run!r} is ahead of round {epoch} but keeps no snapshots to "
                    "rewind to; create the run with a snapshot_dir to resume it"
                )
            self.barrier()
            self._started = True
        self.ids = np.asarray(self._fetch(epoch), dtype=np.int64)
        self._sorter = np.argsort(self.ids, kind="stable")
        self._weights = np.asarray(
            self.endpoint.loss_weights(self.ids) if len(self.ids) else [], dtype=np.float32
        )
        self._uniform = bool((self._weights == 1).all())
        self.round = epoch

    @property
    def max_staleness(self) -> int:
        """How many optimizer steps behind the trainers a round's scores may be (-1: none)."""
        return int(self.config.get("max_staleness", -1))

    def _fetch(self, epoch: int) -> Any:
        if self.max_staleness < 0:
            return self.endpoint.subset(epoch, self.rank, self.world_size)
        # No barrier: ask with this rank's newest step until the store's scores are close enough.
        deadline = time.monotonic() + STALENESS_WAIT_S
        while True:
            try:
                return self.endpoint.subset(epoch, self.rank, self.world_size, self.step - 1)
            except NotReady:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"round {epoch} of run {self.run!r}: the store's scores stayed more than "
                        f"{self.max_staleness} steps behind step {self.step - 1} for {STALENESS_WAIT_S:g} s"
                    ) from None
                time.sleep(0.01)

    def order(self) -> np.ndarray:
        """The slice's positions in this round's order (seeded by seed, round and rank)."""
        if not self.shuffle:
            return np.arange(len(self.ids))
        assert self.round is not None, "set_epoch() first"
        return np.random.default_rng([self.seed, self.round, self.rank]).permutation(len(self.ids))

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids[self.order()].tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, ids: Any) -> np.ndarray:
        """Where each of ``ids`` stands in this rank's slice (rows of :meth:`parameters`)."""
        ids = np.asarray(ids.cpu().numpy() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64)
        found: np.ndarray = self._sorter[np.searchsorted(self.ids, ids, sorter=self._sorter)]
        return found

    def weights(self, ids: Any, device: torch.device | str | None = None) -> torch.Tensor:
        """The weight of each of ``ids``' loss this round, a float32 tensor on ``device`` (default: the
        device of ``ids``, a tensor, else the CPU). Apply it as ``(weights * loss_i).mean()``: selectors
        that weight samples (``infobatch``, ``--unbiased``) keep the expected gradient full data's;
        the others give 1.

        Example::

            loss_i = F.cross_entropy(model(x), y, reduction="none")
            loss = (sampler.weights(ids, loss_i.device) * loss_i).mean()
        """
        if device is None:
            device = ids.device if isinstance(ids, torch.Tensor) else "cpu"
        if self._uniform:  # most rounds of most selectors: no lookup per step
            return torch.ones(len(ids), dtype=torch.float32, device=device)
        w = torch.from_numpy(self._weights[self.positions(ids)])
        return w.to(device, non_blocking=True)

    def parameters(self, ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Instance data parameters (log sigma and its momentum) of ``ids`` (default: this slice)."""
        return self.endpoint.parameters(self.ids if ids is None else ids)

    def recorder(self, optimizer: torch.optim.Optimizer | None = None, **kwargs: Any) -> Recorder:
        """The :class:`~curriculum.recorder.Recorder` that streams this rank's byproducts."""
        return Recorder(self, optimizer, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        """The last completed round and the optimizer steps taken: save it with the model."""
        return {"run": self.run, "round": self.completed, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: :attr:`start_round` is the round after the saved one."""
        if state.get("run") != self.run:
            raise ValueError(f"this state belongs to run {state.get('run')!r}, not {self.run!r}")
        self.completed, self.step = int(state["round"]), int(state["step"])
        self.start_round = self.completed + 1

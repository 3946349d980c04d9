"""Where this process stands among the trainers: rank, world size, and a barrier across them.

Taken, in order, from what the caller gives, a Ray Train worker's context, an initialized
``torch.distributed`` process group, or torchrun's ``RANK`` / ``WORLD_SIZE``; a lone process is
rank 0 of 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch.distributed as dist


def _ray_train_context() -> tuple[int, int] | None:
    try:
        import ray.train

        ctx = ray.train.get_context()
        return ctx.get_world_rank(), ctx.get_world_size()
    except (ImportError, RuntimeError):
        return None


def _torch_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` of this process; both or neither may be given."""
    if (rank is None) != (world_size is None):
        raise ValueError("give both rank and world_size, or neither")
    if rank is None or world_size is None:
        found = _ray_train_context()
        if found is None and _torch_distributed():
            found = dist.get_rank(), dist.get_world_size()
        if found is None and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            found = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        rank, world_size = found or (0, 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
    return rank, world_size


def default_barrier(world_size: int) -> Callable[[], None]:
    """A barrier over the trainers: none for one process, else ``torch.distributed``'s.

    Ray Train's ``TorchTrainer``, torchrun and Lightning's DDP all initialize a process group; a
    trainer that has none must pass its own barrier.
    """
    if world_size == 1:
        return lambda: None
    if not _torch_distributed():
        raise ValueError(
            f"{world_size} trainers need a barrier: initialize torch.distributed or pass barrier=..."
        )
    return dist.barrier

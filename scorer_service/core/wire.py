"""The wire schema shared by trainers and the store: what a byproduct batch carries and how.

The client library imports this module and :mod:`scorer_service.core.errors`, nothing else of the
store (a contract in ``.importlinter``). numpy only.
"""

from __future__ import annotations

import numpy as np

# Where the Ray transport finds a run's store: named actors in one namespace.
NAMESPACE = "curriculum"
STORE_PREFIX = "hardness-store:"
SHARD_PREFIX = "hardness-shard:"


def actor_name(run: str) -> str:
    """The Ray actor name of run ``run``'s store (its coordinator, for a sharded store)."""
    return STORE_PREFIX + run


def shard_name(run: str, index: int) -> str:
    """The Ray actor name of shard ``index`` of run ``run``'s store."""
    return f"{SHARD_PREFIX}{run}:{index}"


EXACT_MAX_CLASSES = 128
# float16 overflows to inf above this; an inf sketch would turn every later score of the sample into NaN.
_FLOAT16_MAX = float(np.finfo(np.float16).max)


class OutputSketch:
    """A fixed random projection R^C -> R^m for DoCL byproducts (logits and residuals).

    ``exact`` (C <= 128): the identity, width C, float32 output; inner products are exact.
    Otherwise: a Rademacher matrix P with entries +-1/sqrt(m), so E[P P^T] = I and
    E[<xP, yP>] = <x, y>, with standard deviation ~ ||x|| ||y|| / sqrt(m); output is float16
    (DESIGN.md §4). The signs are the top bits of a PCG64 stream seeded with ``seed``: integer
    arithmetic only, so every rank on every platform and numpy version builds the same matrix from
    (num_classes, dim, seed) alone (numpy keeps bit generator streams stable; its distribution
    samplers, e.g. Gaussian, are not guaranteed to be).
    """

    def __init__(self, num_classes: int, dim: int = 32, seed: int = 0) -> None:
        if num_classes < 1 or dim < 1:
            raise ValueError(f"num_classes and dim must be positive, got {num_classes}, {dim}")
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.seed = int(seed)
        self.exact = self.num_classes <= EXACT_MAX_CLASSES
        self._matrix: np.ndarray | None = None
        if not self.exact:
            raw = np.random.PCG64(self.seed).random_raw(self.num_classes * self.dim)
            signs = (raw >> np.uint64(63)).astype(np.float32).reshape(self.num_classes, self.dim)
            self._matrix = (2.0 * signs - 1.0) / np.float32(np.sqrt(self.dim))

    @property
    def width(self) -> int:
        """Number of stored values per sample: C in exact mode, else m."""
        return self.num_classes if self.exact else self.dim

    @property
    def dtype(self) -> np.dtype:
        """dtype of :meth:`project`'s output: float32 in exact mode, else float16."""
        return np.dtype(np.float32 if self.exact else np.float16)

    @property
    def matrix(self) -> np.ndarray | None:
        """The (C, m) float32 projection (e.g. to project on an accelerator), or None in exact mode."""
        return self._matrix

    def project(self, x: np.ndarray) -> np.ndarray:
        """Project a (b, C) array to (b, width) in :attr:`dtype`."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.num_classes:
            raise ValueError(f"expected shape (b, {self.num_classes}), got {x.shape}")
        if self._matrix is None:
            return x.astype(np.float32)
        out = x.astype(np.float32, copy=False) @ self._matrix
        projected: np.ndarray = np.clip(out, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)
        return projected

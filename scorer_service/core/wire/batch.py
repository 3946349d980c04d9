"""The wire schema shared by trainers and the store: what a byproduct batch carries and how.

Columns (one row per observed sample, all from the training forward pass):

=====================  ==========  ==============================================================
``sample_id``          int64       index in ``[0, n)``; unique within a batch
``loss``               float32     unreduced cross-entropy, before any data-parameter scaling
``correct``            bool        ``argmax(logits) == label`` (optional: runs created with correct=False)
``step``               int64       global optimizer step at which the sample was observed
``lr``                 float64     learning rate of that step (same for every sample of a step; >= 0)
``logit_sketch``       float, 2-d  logits (C <= 128) or their fixed random projection (:class:`OutputSketch`)
``residual_sketch``    float, 2-d  onehot(y) - softmax(z), same projection
``embedding``          float, 2-d  projection of the penultimate features
``log_sigma``          float       instance data parameter after this step (and its ``_momentum``)
``label``              int32       the label trained on (for label-issue reports)
``predicted``          int32       argmax of the logits
=====================  ==========  ==============================================================

Per batch (:data:`BATCH_FIELDS`): ``round``, ``rank``, ``writer`` (a stable id of the sending process)
and ``seq`` (that writer's sequence number, so a retried send is applied once); for backpressure,
``sent`` (the writer's clock when it sent the batch, seconds since the epoch) and ``queued`` (how many
of its sends to this store or shard were unacknowledged then, this one included). A batch split over
the shards of a store also carries the whole batch's learning-rate table (:data:`TABLE_COLUMNS`: every
step of the batch once, in any order), so every shard logs every step's rate, also shards that hold
none of the batch's samples.

The trainer side of the client library imports this module, :mod:`scorer_service.core.errors` and
the answer types (:mod:`scorer_service.core.wire.answers`), nothing else of the store (a contract in
``.importlinter``). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Column:
    """One per-sample column: the dtype kinds the store accepts (``"f"``, ``"iu"``, ...), the dtype a
    trainer sends (None: float16 or float32 as computed, other floats as float32), its dimensions, and
    for a 2-d column the store matrix that fixes its width."""

    kinds: str
    wire: str | None = None
    ndim: int = 1
    matrix: str | None = None
    required: bool = False


COLUMNS: dict[str, Column] = {
    "sample_id": Column("i", "int64", required=True),
    "loss": Column("f", "float32", required=True),
    "correct": Column("b", "bool", required=True),
    "step": Column("i", "int64", required=True),
    "lr": Column("f", "float64", required=True),
    "logit_sketch": Column("f", ndim=2, matrix="outputs"),
    "residual_sketch": Column("f", ndim=2, matrix="outputs"),
    "embedding": Column("f", ndim=2, matrix="embedding"),
    "log_sigma": Column("f"),
    "log_sigma_momentum": Column("f"),
    "label": Column("iu", "int32"),
    "predicted": Column("iu", "int32"),
}
REQUIRED_COLUMNS = tuple(name for name, c in COLUMNS.items() if c.required)
OPTIONAL_COLUMNS = tuple(name for name, c in COLUMNS.items() if not c.required)
# The learning rates of a whole batch, carried by each of its parts (any length, equal to each other).
TABLE_COLUMNS = ("table_step", "table_lr")


@dataclass(frozen=True)
class BatchField:
    """A value of the whole batch: its type, its default (None: required) and what it means. A
    ``sender`` field tells the store about the sending (backpressure) and is not part of the record."""

    type: type
    description: str
    default: float | None = None
    sender: bool = False


BATCH_FIELDS: dict[str, BatchField] = {
    "round": BatchField(int, "round the samples were trained in"),
    "rank": BatchField(int, "rank of the sending trainer"),
    "writer": BatchField(str, "stable id of the sending process"),
    "seq": BatchField(int, "the writer's sequence number: a retried send counts once"),
    "sent": BatchField(float, "the writer's clock when it sent the batch (load report)", 0.0, True),
    "queued": BatchField(int, "the writer's unacknowledged sends, this one included", 0, True),
}
# What a store records of a batch besides its columns (and replays from its log).
RECORD_FIELDS = tuple(name for name, f in BATCH_FIELDS.items() if not f.sender)


@dataclass(frozen=True, kw_only=True)
class Ingested:
    """A store's acknowledgement of a batch: samples applied, whether it was a retried send (applied
    before, so not again), and how far the store is behind its writers (seconds from a send to its
    ingest): a writer slows down above a bound."""

    applied: int
    duplicate: bool
    lag_s: float = 0.0


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

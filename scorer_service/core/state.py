"""Per-sample state of one run: a 64-byte record per sample for what every ingest touches, plain
columns for what only some methods do."""

from __future__ import annotations

from dataclasses import make_dataclass

import numba as nb
import numpy as np

from scorer_service.core import libm

# name -> (dtype, initial value). DIH starts at r0 = 1 (DIHCL Alg. 1); Thompson sampling starts
# from the official code's Beta(2, 2) prior on flips.
COLUMNS: dict[str, tuple[np.dtype, float]] = {
    "dih": (np.dtype(np.float64), 1.0),
    # DIH before its latest update: the rise shows which samples just became harder.
    "dih_prev": (np.dtype(np.float64), 1.0),
    "last_loss": (np.dtype(np.float32), np.nan),
    "last_correct": (np.dtype(np.int8), -1),
    "flips": (np.dtype(np.int32), 0),
    "seen": (np.dtype(np.int32), 0),
    "last_seen_step": (np.dtype(np.int64), -1),
    "last_seen_round": (np.dtype(np.int32), -1),
    "beta_alpha": (np.dtype(np.float32), 2.0),
    "beta_beta": (np.dtype(np.float32), 2.0),
    "importance": (np.dtype(np.float32), 1.0),
    # The weight of the sample's loss in the trainers' mean over a batch, as its newest round chose it
    # (InfoBatch's rescaling of kept low-loss samples, importance weights of an unbiased selection).
    "loss_weight": (np.dtype(np.float32), 1.0),
    # DoCL (Zhou et al., AISTATS 2021): running score, and how many outputs were recorded (0: none
    # yet, 1: a previous output to compare with, 2+: scored).
    "docl": (np.dtype(np.float64), 0.0),
    "outputs_seen": (np.dtype(np.int32), 0),
    # Data Parameters (Saxena et al., NeurIPS 2019): per-instance log temperature and its momentum.
    "log_sigma": (np.dtype(np.float32), 0.0),
    "log_sigma_momentum": (np.dtype(np.float32), 0.0),
    # Label noise (core.label_noise): the mean loss over all observations, the probability that the
    # label is wrong (refit at every round's end), and the label and prediction when trainers send them.
    "loss_mean": (np.dtype(np.float32), np.nan),
    "noise": (np.dtype(np.float32), np.nan),
    "label": (np.dtype(np.int32), -1),
    "predicted": (np.dtype(np.int32), -1),
}

RECORD_BYTES = 64  # one cache line on x86-64 and most ARM cores
# The columns every ingest reads or writes, with ``stamp`` (the last ingest check that saw the sample,
# for the duplicate-id check), packed into one cache-line-aligned record per sample: an update of a
# sample then costs one cache miss instead of one per column. 8-byte fields first, so each is aligned.
_HOT = (
    "dih",
    "dih_prev",
    "last_seen_step",
    "stamp",
    "last_loss",
    "flips",
    "seen",
    "last_seen_round",
    "beta_alpha",
    "beta_beta",
    "importance",
    "last_correct",
)


def _record_dtype() -> np.dtype:
    formats, offsets, at = [], [], 0
    for name in _HOT:
        dt = COLUMNS[name][0] if name in COLUMNS else np.dtype(np.int64)
        formats.append(dt)
        offsets.append(at)
        at += dt.itemsize
    if at > RECORD_BYTES:
        raise AssertionError(f"the per-sample record needs {at} bytes, more than {RECORD_BYTES}")
    return np.dtype({"names": list(_HOT), "formats": formats, "offsets": offsets, "itemsize": RECORD_BYTES})


RECORD = _record_dtype()


def _sample_class() -> type:
    # One field per score column: integers stay integers; floats are None where undefined (NaN).
    columns = [
        (name, int if np.issubdtype(dtype, np.integer) else float | None)
        for name, (dtype, _) in COLUMNS.items()
    ]
    namespace = {"__doc__": "Every score column of one sample (a store's answer).", "__module__": __name__}
    return make_dataclass("Sample", [("id", int), *columns], frozen=True, namespace=namespace)


Sample = _sample_class()


# Columns a user may rank or histogram by; ``sigma`` is derived as exp(log_sigma), ``dih_rise`` as the
# change of DIH at each sample's latest observation (NaN before its first).
METRICS: tuple[str, ...] = (
    "dih",
    "last_loss",
    "flips",
    "seen",
    "beta_alpha",
    "beta_beta",
    "docl",
    "log_sigma",
    "sigma",
    "loss_mean",
    "noise",
    "dih_rise",
)


def _aligned_records(n: int) -> np.ndarray:
    """``n`` zeroed records starting on a cache-line boundary (numpy aligns to 16 bytes only)."""
    raw = np.zeros(n * RECORD_BYTES + RECORD_BYTES, dtype=np.uint8)
    start = -raw.ctypes.data % RECORD_BYTES
    return raw[start : start + n * RECORD_BYTES].view(RECORD)


class SampleState:
    """The per-sample state of ``n`` samples.

    ``records`` holds the hot columns (``RECORD``, one 64-byte record per sample); ``columns`` maps
    every name of :data:`COLUMNS` to a writable 1-d array, a strided view into ``records`` for the
    hot ones. ``matrices`` hold the per-sample vectors that only some methods need, allocated only
    when configured: ``outputs`` (the latest logits or their sketch, DoCL) and ``embedding`` (a
    sketch of the penultimate features, diversity).
    """

    def __init__(
        self, n: int, *, output_width: int = 0, embedding_dim: int = 0, log_sigma_init: float = 0.0
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.records = _aligned_records(n)
        cold = {name: np.empty(n, dtype=dt) for name, (dt, _) in COLUMNS.items() if name not in _HOT}
        self.columns = self._views(cold)
        for name, (_, init) in COLUMNS.items():
            self.columns[name][:] = init
        self.columns["log_sigma"][:] = log_sigma_init
        self.matrices: dict[str, np.ndarray] = {}
        if output_width:
            self.matrices["outputs"] = np.zeros((n, output_width), dtype=np.float32)
        if embedding_dim:
            self.matrices["embedding"] = np.zeros((n, embedding_dim), dtype=np.float16)

    def _views(self, cold: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: self.records[name] if name in _HOT else cold[name] for name in COLUMNS}

    def metric(self, name: str) -> np.ndarray:
        """A rankable column as float64 (``sigma`` and ``dih_rise`` derived, see :data:`METRICS`)."""
        if name == "sigma":
            return libm.exp(self.columns["log_sigma"])
        if name == "dih_rise":
            return np.where(self.seen > 0, self.dih - self.dih_prev, np.nan)
        return self.columns[name].astype(np.float64)

    def set_importance(self, positions: np.ndarray, weights: np.ndarray | None) -> None:
        """Importance weight 1 everywhere but at ``positions`` (increasing), which get ``weights``."""
        _set_at(self.importance, positions, weights)

    def set_loss_weight(self, positions: np.ndarray, weights: np.ndarray | None) -> None:
        """Loss weight 1 everywhere but at ``positions`` (increasing), which get ``weights``."""
        _set_at(self.loss_weight, positions, weights)

    def __getattr__(self, name: str) -> np.ndarray:
        for table in ("columns", "matrices"):
            cols: dict[str, np.ndarray] | None = self.__dict__.get(table)
            if cols is not None and name in cols:
                return cols[name]
        raise AttributeError(name)

    def rows(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Every column at ``ids``."""
        return {name: col[ids] for name, col in self.columns.items()}

    def take(self, ids: np.ndarray) -> SampleState:
        """The samples ``ids`` only, as a state of their own (copies; position j is sample ids[j])."""
        other = SampleState.__new__(SampleState)
        other.n = len(ids)
        other.columns = {k: v[ids] for k, v in self.columns.items()}
        other.matrices = {k: v[ids] for k, v in self.matrices.items()}
        return other

    def copy(self) -> SampleState:
        """A deep copy (tests compare before and after a rejected batch)."""
        other = SampleState.__new__(SampleState)
        other.n = self.n
        other.records = _aligned_records(self.n)
        other.records[:] = self.records
        other.columns = other._views({k: v.copy() for k, v in self.columns.items() if k not in _HOT})
        other.matrices = {k: v.copy() for k, v in self.matrices.items()}
        return other


def _set_at(column: np.ndarray, positions: np.ndarray, weights: np.ndarray | None) -> None:
    if weights is None:
        column[:] = 1.0
    else:
        _ones_but_at(column, positions, np.asarray(weights, dtype=np.float32))


@nb.njit(cache=True, nogil=True)
def _ones_but_at(column: np.ndarray, positions: np.ndarray, weights: np.ndarray) -> None:
    # One pass over the column (records are 64 bytes apart), without branches on the positions.
    i, m = 0, positions.shape[0]
    for j in range(column.shape[0]):
        at = min(i, m - 1)
        hit = (i < m) and positions[at] == j
        column[j] = weights[at] if hit else np.float32(1.0)
        i += hit

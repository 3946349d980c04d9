"""Per-sample state columns of one run, and the run's learning-rate log."""

from __future__ import annotations

import numpy as np

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
    # DoCL (Zhou et al., AISTATS 2021): running score, and how many outputs were recorded (0: none
    # yet, 1: a previous output to compare with, 2+: scored).
    "docl": (np.dtype(np.float64), 0.0),
    "outputs_seen": (np.dtype(np.int32), 0),
    # Data Parameters (Saxena et al., NeurIPS 2019): per-instance log temperature and its momentum.
    "log_sigma": (np.dtype(np.float32), 0.0),
    "log_sigma_momentum": (np.dtype(np.float32), 0.0),
}

# Columns a user may rank or histogram by; ``sigma`` is derived as exp(log_sigma).
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
)


class SampleState:
    """Preallocated numpy columns of length ``n``; every update is a vectorized scatter.

    ``matrices`` hold the per-sample vectors that only some methods need, allocated only when
    configured: ``outputs`` (the latest logits or their sketch, DoCL) and ``embedding`` (a sketch of
    the penultimate features, diversity).
    """

    def __init__(
        self, n: int, *, output_width: int = 0, embedding_dim: int = 0, log_sigma_init: float = 0.0
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.columns: dict[str, np.ndarray] = {
            name: np.full(n, init, dtype=dtype) for name, (dtype, init) in COLUMNS.items()
        }
        self.columns["log_sigma"][:] = log_sigma_init
        self.matrices: dict[str, np.ndarray] = {}
        if output_width:
            self.matrices["outputs"] = np.zeros((n, output_width), dtype=np.float32)
        if embedding_dim:
            self.matrices["embedding"] = np.zeros((n, embedding_dim), dtype=np.float16)

    def metric(self, name: str) -> np.ndarray:
        """A rankable column as float64 (``sigma`` derived from ``log_sigma``)."""
        if name == "sigma":
            return np.exp(self.columns["log_sigma"].astype(np.float64))
        return self.columns[name].astype(np.float64)

    def __getattr__(self, name: str) -> np.ndarray:
        for table in ("columns", "matrices"):
            cols = self.__dict__.get(table)
            if cols is not None and name in cols:
                return cols[name]
        raise AttributeError(name)

    def rows(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Every column at ``ids``."""
        return {name: col[ids] for name, col in self.columns.items()}

    def copy(self) -> SampleState:
        """A deep copy (tests compare before and after a rejected batch)."""
        other = SampleState.__new__(SampleState)
        other.n = self.n
        other.columns = {k: v.copy() for k, v in self.columns.items()}
        other.matrices = {k: v.copy() for k, v in self.matrices.items()}
        return other


class LearningRateLog:
    """Learning rate of every global optimizer step, with prefix sums.

    ``cum[s]`` is the sum of the learning rates of steps ``0 .. s-1``, so the learning-rate
    "distance" covered by steps ``a .. b`` inclusive is ``cum[b + 1] - cum[a]``: O(1) per sample.
    Every rank runs every step, so each step arrives once per rank; the first report is kept and
    later ones must agree. Storage grows by doubling, so appending is amortized O(new steps).
    """

    def __init__(self) -> None:
        self._lr = np.zeros(1024, dtype=np.float64)
        self._cum = np.zeros(1025, dtype=np.float64)
        self.num_steps = 0

    @property
    def lr(self) -> np.ndarray:
        return self._lr[: self.num_steps]

    @property
    def cum(self) -> np.ndarray:
        return self._cum[: self.num_steps + 1]

    def plan(self, steps: np.ndarray, lrs: np.ndarray) -> np.ndarray:
        """Check ``(steps, lrs)`` against the log; return the rates of the new steps to append.

        Raises ``ValueError`` naming the first inconsistency: a step whose rate differs from
        the one already logged, two rates for one step, or a gap before the first new step.
        Nothing is changed; :meth:`append` applies the plan.
        """
        if steps.size == 0:
            return np.zeros(0)
        uniq, first = np.unique(steps, return_index=True)
        uniq_lr = lrs[first]
        inv = np.searchsorted(uniq, steps)
        differs = ~np.isclose(lrs, uniq_lr[inv], rtol=1e-6, atol=0.0)
        if np.any(differs):
            raise ValueError(f"step {int(steps[np.argmax(differs)])} carries two learning rates in one batch")
        known = uniq < self.num_steps
        mismatch = ~np.isclose(self._lr[uniq[known]], uniq_lr[known], rtol=1e-6, atol=0.0)
        if np.any(mismatch):
            s = int(uniq[known][np.argmax(mismatch)])
            raise ValueError(f"step {s} was logged with lr {self._lr[s]:g} and is now reported with another")
        new = uniq[~known]
        expected = np.arange(self.num_steps, self.num_steps + new.size)
        if not np.array_equal(new, expected):
            gap = int(expected[np.argmax(new != expected)])
            raise ValueError(f"learning rate of step {gap} was never reported (steps must be contiguous)")
        return uniq_lr[~known]

    def append(self, new_lrs: np.ndarray) -> None:
        """Append the rates returned by :meth:`plan`."""
        end = self.num_steps + new_lrs.size
        if end > self._lr.size:
            cap = max(end, 2 * self._lr.size)
            self._lr = np.concatenate([self._lr, np.zeros(cap - self._lr.size)])
            self._cum = np.concatenate([self._cum, np.zeros(cap + 1 - self._cum.size)])
        self._lr[self.num_steps : end] = new_lrs
        self._cum[self.num_steps + 1 : end + 1] = self._cum[self.num_steps] + np.cumsum(new_lrs)
        self.num_steps = end

    def restore(self, lr: np.ndarray, cum: np.ndarray) -> None:
        """Set the log to saved rates and their saved prefix sums (recomputing the sums in one
        pass would round differently from the incremental sums the scores were computed with)."""
        self._lr, self._cum, self.num_steps = lr.astype(np.float64), cum.astype(np.float64), int(lr.size)
        self.append(np.zeros(0))

    def since(self, last_step: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Sum of learning rates of steps ``last_step .. step`` inclusive (DIHCL Eq. 2)."""
        return self._cum[step + 1] - self._cum[last_step]

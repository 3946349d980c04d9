"""The run's learning-rate log: every optimizer step's rate, with prefix sums."""

from __future__ import annotations

import numba as nb
import numpy as np

from scorer_service.core.kernel_types import FLOATS, INT, column


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
        problem, step, new = _plan(steps, lrs, self._lr, self.num_steps)
        if problem == _TWO_RATES:
            raise ValueError(f"step {step} carries two learning rates in one batch")
        if problem == _CHANGED:
            logged = self._lr[step]
            raise ValueError(f"step {step} was logged with lr {logged:g} and is now reported with another")
        if problem == _GAP:
            raise ValueError(f"learning rate of step {step} was never reported (steps must be contiguous)")
        return new

    def append(self, new_lrs: np.ndarray) -> None:
        """Append the rates returned by :meth:`plan`."""
        end = self.num_steps + new_lrs.size
        if end > self._lr.size:
            cap = max(end, 2 * self._lr.size)
            self._lr = np.concatenate([self._lr, np.zeros(cap - self._lr.size)])
            self._cum = np.concatenate([self._cum, np.zeros(cap + 1 - self._cum.size)])
        self._lr[self.num_steps : end] = new_lrs
        # One addition per step, left to right: the sums do not depend on how the steps were grouped
        # into appends, so every shard of a store (each appending as its batches arrive) and a
        # restored log hold the same sums, bit for bit.
        start = self._cum[self.num_steps : self.num_steps + 1]
        self._cum[self.num_steps + 1 : end + 1] = np.cumsum(np.concatenate([start, new_lrs]))[1:]
        self.num_steps = end

    def restore(self, lr: np.ndarray, cum: np.ndarray) -> None:
        """Set the log to saved rates and their saved prefix sums."""
        self._lr, self._cum, self.num_steps = lr.astype(np.float64), cum.astype(np.float64), int(lr.size)
        self.append(np.zeros(0))

    def since(self, last_step: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Sum of learning rates of steps ``last_step .. step`` inclusive (DIHCL Eq. 2)."""
        covered: np.ndarray = self._cum[step + 1] - self._cum[last_step]
        return covered


_OK, _TWO_RATES, _CHANGED, _GAP = range(4)

_SIGNATURES = [
    nb.types.Tuple((INT, INT, nb.float64[::1]))(column(INT), column(lr), column(nb.float64), INT)
    for lr in FLOATS
]


@nb.njit(cache=True, nogil=True, inline="always")
def _close(a: float, b: float) -> bool:
    # numpy.isclose(a, b, rtol=1e-6, atol=0), as the rates were compared before this was compiled.
    return abs(a - b) <= 0.0 + 1e-6 * abs(b)


@nb.njit(_SIGNATURES, cache=True, nogil=True)
def _plan(
    steps: np.ndarray, lrs: np.ndarray, logged: np.ndarray, num_steps: int
) -> tuple[int, int, np.ndarray]:
    """(problem, its step, rates of the new steps) in one pass over the batch and one over its steps.

    Steps index a table directly when they span few values (a batch covers a few consecutive
    steps); otherwise through their sorted distinct values.
    """
    m = steps.shape[0]
    lo, hi = steps.min(), steps.max()
    dense = hi - lo < 2 * m + 1024
    uniq = np.arange(lo, hi + 1) if dense else np.unique(steps)
    first = np.full(uniq.shape[0], -1, dtype=np.int64)  # position of each step's first sample
    for i in range(m):
        k = steps[i] - lo if dense else np.searchsorted(uniq, steps[i])
        f = first[k]
        if f < 0:
            first[k] = i
        elif not _close(lrs[i], lrs[f]):
            return _TWO_RATES, steps[i], np.zeros(0)
    for k in range(uniq.shape[0]):
        s = uniq[k]
        if s >= num_steps:
            break
        if first[k] >= 0 and not _close(logged[s], lrs[first[k]]):
            return _CHANGED, s, np.zeros(0)
    new = np.empty(uniq.shape[0])
    count = 0
    for k in range(uniq.shape[0]):
        if uniq[k] < num_steps or first[k] < 0:
            continue
        if uniq[k] != num_steps + count:
            return _GAP, num_steps + count, np.zeros(0)
        new[count] = lrs[first[k]]
        count += 1
    return _OK, 0, new[:count].copy()

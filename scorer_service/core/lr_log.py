"""The run's learning-rate log: every optimizer step's rate, with prefix sums."""

from __future__ import annotations

import numpy as np


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

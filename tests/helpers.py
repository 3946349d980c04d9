"""Small builders shared by the tests."""

from __future__ import annotations

import numpy as np


def batch(ids, loss, correct, step, lr, *, round_=0, rank=0, writer="w", seq=0) -> dict:
    """A byproduct batch dict; scalars ``step``/``lr`` are broadcast over the samples."""
    ids = np.asarray(ids, dtype=np.int64)
    m = len(ids)
    return {
        "sample_id": ids,
        "loss": np.asarray(loss, dtype=np.float32),
        "correct": np.asarray(correct, dtype=bool),
        "step": np.broadcast_to(np.asarray(step, dtype=np.int64), (m,)).copy(),
        "lr": np.broadcast_to(np.asarray(lr, dtype=np.float64), (m,)).copy(),
        "round": round_,
        "rank": rank,
        "writer": writer,
        "seq": seq,
    }


def reference_dih(observations, n: int, metric: str, gamma: float) -> np.ndarray:
    """DIHCL Eqs. 1-2 written sample by sample, independent of the store's vectorized code.

    ``observations``: (sample, step, loss, correct, lr_of_step) in arrival order; the learning
    rate of every step is taken from the observations themselves.
    """
    lr_of = {}
    for _, step, _, _, lr in observations:
        lr_of[step] = lr
    r = [1.0] * n
    last = {}
    for i, step, loss, correct, lr in observations:
        if metric == "loss":
            r[i] = gamma * (loss / lr) + (1 - gamma) * r[i]
        elif i in last:
            prev_step, prev_loss, prev_correct = last[i]
            since = sum(lr_of[s] for s in range(prev_step, step + 1))
            change = abs(loss - prev_loss) if metric == "dloss" else float(correct != prev_correct)
            r[i] = gamma * (change / since) + (1 - gamma) * r[i]
        last[i] = (step, loss, correct)
    return np.array(r)

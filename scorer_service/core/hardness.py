"""Dynamic Instance Hardness (DIHCL, Zhou, Wang & Bilmes, NeurIPS 2020, Eqs. 1-2).

DIH is a running average of an instantaneous hardness ``a`` observed only for samples that were
trained on: ``r <- gamma * a + (1 - gamma) * r`` (Eq. 1, ``gamma`` weighs the new value; paper
default 0.95; unobserved samples keep their stale value). ``a`` is normalized by the learning rate
(Eq. 2) because a larger step moves the model, and so the loss, more:

- ``loss``:  ``loss / lr`` of the step that computed it (the printed formula's ``eta_t``);
- ``dloss``: ``|loss - loss at last observation| / (sum of lr since then)``;
- ``flip``:  ``|correct - correct at last observation| / (sum of lr since then)``.

"Sum of lr since then" covers the steps from the last observation to this one inclusive, as
Eq. 2's sum from ``tau_t(i)`` to ``t``. ``dloss`` and ``flip`` need a previous observation: a
sample's first observation only records its loss and correctness and leaves ``r`` at ``r0``.
A normalizer of 0 (a warm-up that starts from lr = 0) leaves ``r`` as it is too: the step did not
move the model, so the observation says nothing about how hard the sample is to learn.
"""

from __future__ import annotations

import numpy as np

HARDNESS_METRICS: tuple[str, ...] = ("loss", "dloss", "flip")


def instantaneous_hardness(
    metric: str,
    loss: np.ndarray,
    correct: np.ndarray | None,
    lr: np.ndarray,
    prev_loss: np.ndarray,
    prev_correct: np.ndarray,
    lr_since: np.ndarray,
    first: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized instantaneous hardness ``a`` and the mask of samples whose DIH it updates
    (``a`` is only meaningful under the mask). ``correct`` may be None unless ``metric`` is flip."""
    if metric == "loss":
        moved = lr > 0
        return loss / np.where(moved, lr, 1.0), moved
    if metric == "dloss":
        change = np.abs(loss - np.where(first, loss, prev_loss))
    elif metric == "flip":
        change = (correct.astype(np.int8) != prev_correct).astype(np.float64)
    else:
        raise ValueError(f"unknown hardness metric {metric!r}; expected one of {', '.join(HARDNESS_METRICS)}")
    moved = lr_since > 0
    return change / np.where(moved, lr_since, 1.0), ~first & moved


def dih_update(r: np.ndarray, a: np.ndarray, gamma: float) -> np.ndarray:
    """DIHCL Eq. 1 for observed samples: ``gamma * a + (1 - gamma) * r``."""
    return gamma * a + (1.0 - gamma) * r

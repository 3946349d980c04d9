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

Both rules are per sample and compiled: the ingest kernel (:mod:`.updates`) calls them for each
sample of a batch while it holds the sample's record.
"""

from __future__ import annotations

import numba as nb

HARDNESS_METRICS: tuple[str, ...] = ("loss", "dloss", "flip")
LOSS, DLOSS, FLIP = range(3)  # the compiled code's names for HARDNESS_METRICS


def metric_code(metric: str) -> int:
    """The compiled code's number of a hardness metric."""
    if metric not in HARDNESS_METRICS:
        raise ValueError(f"unknown hardness metric {metric!r}; expected one of {', '.join(HARDNESS_METRICS)}")
    return HARDNESS_METRICS.index(metric)


@nb.njit(cache=True, nogil=True, inline="always")
def instantaneous_hardness(
    metric: int,
    loss: float,
    changed: bool,
    lr: float,
    prev_loss: float,
    lr_since: float,
    first: bool,
) -> tuple[float, bool]:
    """Normalized instantaneous hardness ``a`` of one observation and whether it updates DIH (``a``
    is only meaningful then). ``changed``: the correctness differs from the last observation's
    (flip only)."""
    if metric == LOSS:
        moved = lr > 0
        return loss / (lr if moved else 1.0), moved
    change = abs(loss - (loss if first else prev_loss)) if metric == DLOSS else (1.0 if changed else 0.0)
    moved = lr_since > 0
    return change / (lr_since if moved else 1.0), (not first) and moved


@nb.njit(cache=True, nogil=True, inline="always")
def dih_update(r: float, a: float, gamma: float) -> float:
    """DIHCL Eq. 1 for an observed sample: ``gamma * a + (1 - gamma) * r``."""
    return gamma * a + (1.0 - gamma) * r

"""Score updates: one validated byproduct batch applied to the per-sample columns, vectorized.

DIH (DIHCL Eqs. 1-2, :mod:`.hardness`), DoCL (:mod:`.docl`), flips and the Thompson-sampling
counts, the latest loss and correctness, and the per-sample vectors some methods keep (output
sketches, embeddings, instance data parameters).
"""

from __future__ import annotations

import numpy as np

from scorer_service.core.byproducts import ByproductBatch
from scorer_service.core.docl import docl_observation, docl_update
from scorer_service.core.hardness import dih_update, instantaneous_hardness
from scorer_service.core.lr_log import LearningRateLog
from scorer_service.core.state import SampleState


def apply_batch(
    s: SampleState,
    lr_log: LearningRateLog,
    batch: ByproductBatch,
    new_lrs: np.ndarray,
    metric: str,
    gamma: float,
) -> None:
    """Append the batch's new learning rates to ``lr_log`` and update every column of its samples."""
    ids = batch.sample_id
    lr_log.append(new_lrs)
    first = s.seen[ids] == 0
    last_step = np.where(first, batch.step, s.last_seen_step[ids])
    lr_since = lr_log.since(last_step, batch.step)
    prev_correct = s.last_correct[ids]
    a, update = instantaneous_hardness(
        metric,
        batch.loss,
        batch.correct,
        batch.lr,
        s.last_loss[ids].astype(np.float64),
        prev_correct,
        lr_since,
        first,
    )
    a = a * s.importance[ids]
    s.dih_prev[ids[update]] = s.dih[ids[update]]
    s.dih[ids[update]] = dih_update(s.dih[ids[update]], a[update], gamma)
    if "logit_sketch" in batch.extra:
        _apply_docl(s, batch, lr_since)
    if "embedding" in batch.extra:
        s.embedding[ids] = batch.extra["embedding"]
    for name in ("log_sigma", "log_sigma_momentum", "label", "predicted"):
        if name in batch.extra:
            s.columns[name][ids] = batch.extra[name]
    # Running mean of the loss over every observation (the label-noise estimate's input).
    mean = s.loss_mean[ids].astype(np.float64)
    s.loss_mean[ids] = np.where(first, batch.loss, mean + (batch.loss - mean) / (s.seen[ids] + 1))

    if batch.correct is not None:
        flip = ~first & (batch.correct.astype(np.int8) != prev_correct)
        s.flips[ids] += flip
        s.beta_alpha[ids] += flip
        s.beta_beta[ids] += ~first & ~flip
        s.last_correct[ids] = batch.correct
    s.last_loss[ids] = batch.loss
    s.last_seen_step[ids] = batch.step
    s.last_seen_round[ids] = batch.round
    s.seen[ids] += 1


def _apply_docl(s: SampleState, batch: ByproductBatch, lr_since: np.ndarray) -> None:
    """DoCL score: <residual, z_now - z_prev> over LR progress, averaged (official code, §2.2)."""
    ids = batch.sample_id
    now = batch.extra["logit_sketch"]
    count = s.outputs_seen[ids]
    # Outputs are compared over learning-rate progress: none (lr = 0 so far) is not scored.
    has_prev = (count > 0) & (lr_since > 0)
    if np.any(has_prev) and "residual_sketch" in batch.extra:
        scored = ids[has_prev]
        a = docl_observation(
            batch.extra["residual_sketch"][has_prev], now[has_prev], s.outputs[scored], lr_since[has_prev]
        )
        s.docl[scored] = docl_update(s.docl[scored], a, count[has_prev] == 1)
    s.outputs[ids] = now
    # A comparison skipped for lack of progress leaves the count, so the next one still initializes.
    s.outputs_seen[ids] = count + ((count == 0) | has_prev)

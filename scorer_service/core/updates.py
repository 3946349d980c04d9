"""Score updates: one checked byproduct batch applied to the per-sample state.

Every ingest runs :func:`_apply_records`, one compiled pass that updates each sample's record (see
:mod:`.state`): DIH (DIHCL Eqs. 1-2, :mod:`.hardness`), flips and the Thompson-sampling counts, the
latest loss and correctness, when and in which round it was seen, and the running mean of its loss.
The per-sample vectors and scores only some methods keep (DoCL, output sketches, embeddings,
instance data parameters) are vectorized numpy over the batch, run only for batches that carry them.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from scorer_service.core.docl import docl_observation, docl_update
from scorer_service.core.hardness import dih_update, instantaneous_hardness
from scorer_service.core.kernel_types import FLOATS, INT, RECORDS, column, out
from scorer_service.core.lr_log import LearningRateLog
from scorer_service.core.prefetch import AHEAD, prefetch
from scorer_service.core.state import SampleState
from scorer_service.core.wire.validation import ByproductBatch

_NO_CORRECT = np.zeros(0, dtype=np.bool_)


def apply_batch(
    s: SampleState,
    lr_log: LearningRateLog,
    batch: ByproductBatch,
    new_lrs: np.ndarray,
    metric: int,
    gamma: float,
) -> None:
    """Append the batch's new learning rates to ``lr_log`` and update every column of its samples
    (``metric``: :func:`~.hardness.metric_code`)."""
    ids = batch.sample_id
    lr_log.append(new_lrs)
    docl = "logit_sketch" in batch.extra
    # DoCL compares outputs over the learning-rate progress since the sample's last observation,
    # which the record pass overwrites: it hands that progress over.
    lr_since = np.empty(len(ids) if docl else 0)
    outputs_seen = s.outputs_seen[ids] if docl else None
    correct = _NO_CORRECT if batch.correct is None else batch.correct
    _apply_records(
        s.records,
        ids,
        batch.loss,
        correct,
        batch.correct is not None,
        batch.step,
        batch.lr,
        batch.round,
        lr_log.cum,
        metric,
        gamma,
        lr_since,
        s.loss_mean,
    )
    if docl:
        assert outputs_seen is not None
        _apply_docl(s, batch, lr_since, outputs_seen)
    if "embedding" in batch.extra:
        s.embedding[ids] = batch.extra["embedding"]
    for name in ("log_sigma", "log_sigma_momentum", "label", "predicted"):
        if name in batch.extra:
            s.columns[name][ids] = batch.extra[name]


_SIGNATURES = [
    nb.void(
        RECORDS,
        column(INT),
        column(loss),
        column(nb.boolean),
        nb.boolean,
        column(INT),
        column(lr),
        INT,
        column(nb.float64),
        INT,
        nb.float64,
        out(nb.float64),
        out(nb.float32),
    )
    for loss in FLOATS
    for lr in FLOATS
]


@nb.njit(_SIGNATURES, cache=True, nogil=True)
def _apply_records(
    records: np.ndarray,
    ids: np.ndarray,
    loss: np.ndarray,
    correct: np.ndarray,
    has_correct: bool,
    step: np.ndarray,
    lr: np.ndarray,
    round_: int,
    cum: np.ndarray,
    metric: int,
    gamma: float,
    lr_since_out: np.ndarray,
    loss_mean: np.ndarray,
) -> None:
    keep_since = lr_since_out.shape[0] > 0
    m = ids.shape[0]
    for i in range(m):
        # The scan just loaded these records; a large batch may have pushed some out of the cache.
        if i + AHEAD < m:
            prefetch(records, ids[i + AHEAD])
        r = records[ids[i]]
        first = r.seen == 0
        now = step[i]
        since = cum[now + 1] - cum[now if first else r.last_seen_step]
        c = np.int8(correct[i]) if has_correct else np.int8(-1)
        x, rate, prev = np.float64(loss[i]), np.float64(lr[i]), np.float64(r.last_loss)
        a, update = instantaneous_hardness(metric, x, c != r.last_correct, rate, prev, since, first)
        if update:
            r.dih_prev = r.dih
            r.dih = dih_update(r.dih, a * np.float64(r.importance), gamma)
        if has_correct:
            if not first and c != r.last_correct:
                r.flips += 1
                r.beta_alpha += 1
            elif not first:
                r.beta_beta += 1
            r.last_correct = c
        r.last_loss = loss[i]
        r.last_seen_step = now
        r.last_seen_round = round_
        r.seen += 1
        # The running mean of the loss over every observation (the label-noise estimate's input).
        j = ids[i]
        loss_mean[j] = x if first else loss_mean[j] + (x - loss_mean[j]) / r.seen
        if keep_since:
            lr_since_out[i] = since


def _apply_docl(s: SampleState, batch: ByproductBatch, lr_since: np.ndarray, count: np.ndarray) -> None:
    """DoCL score: <residual, z_now - z_prev> over LR progress, averaged (official code, §2.2)."""
    ids = batch.sample_id
    now = batch.extra["logit_sketch"]
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

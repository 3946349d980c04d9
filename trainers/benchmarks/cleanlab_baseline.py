"""Label-issue detection: the store's noise estimate next to cleanlab's, scored the same way.

cleanlab's ``find_label_issues`` needs out-of-sample predicted probabilities: K-fold
cross-validation trains the same model K times, each on (K-1)/K of the data with the same optimizer
and batch size as ``curriculum train`` (SGD, lr 0.1 annealed to 5e-4 by cosine, momentum 0.9,
Nesterov, weight decay 5e-4, batch 64) for the run's number of epochs, and predicts the held-out
fold. Those trainings are counted in sample passes; the store's estimate needs none beyond the run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from trainers.datasets import load_dataset
from trainers.networks import build_model

FOLDS = 5


def detection(score: np.ndarray, noisy: np.ndarray | None) -> dict[str, float] | None:
    """AUROC of ``score`` (larger: more likely corrupted) and the precision of its top ``|noisy|``."""
    if noisy is None or not noisy.any() or noisy.all():
        return None
    score = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0)
    top = np.argsort(-score, kind="stable")[: int(noisy.sum())]
    return {"auroc": float(roc_auc_score(noisy, score)), "precision_at_noise_rate": float(noisy[top].mean())}


def _fit_predict(
    model: str, x: torch.Tensor, y: torch.Tensor, held: torch.Tensor, classes: int, epochs: int
) -> np.ndarray:
    net = build_model(model, tuple(x.shape[1:]), classes)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * math.ceil(len(y) / 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=5e-4)
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(64):
            loss = F.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        return torch.cat([net(part).softmax(1) for part in held.split(4096)]).numpy()


def cleanlab_detection(spec: str, model: str, seed: int, epochs: int) -> dict[str, Any]:
    """cleanlab's ranking (``get_label_quality_scores``) and ``find_label_issues`` on ``spec``'s data."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    data = load_dataset(spec, seed)
    x, y = data.train.batch(np.arange(data.n))
    torch.manual_seed(seed)
    probs = np.zeros((data.n, data.num_classes))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for train, held in folds.split(np.zeros(data.n), y.numpy()):
        probs[held] = _fit_predict(model, x[train], y[train], x[held], data.num_classes, epochs)
    labels = y.numpy()
    quality = get_label_quality_scores(labels, probs)
    issues = find_label_issues(labels, probs)
    out = detection(1.0 - quality, data.noisy) or {}
    noisy = np.asarray(data.noisy, dtype=bool)
    return {
        "seed": seed,
        **out,
        "flagged": int(issues.sum()),
        "flagged_precision": float(noisy[issues].mean()) if issues.any() else 0.0,
        "extra_sample_passes": FOLDS * epochs * (data.n - data.n // FOLDS),
    }

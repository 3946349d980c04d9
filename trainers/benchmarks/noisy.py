"""How well each per-sample score ranks corrupted labels above clean ones as training proceeds.

Synthetic data with symmetric label noise (``trainers.datasets.synthetic`` records which training
labels it corrupted). After every round, ``run_training``'s ``on_round`` callback reads score
columns from the run's store and scores them against the corruption mask:

* AUROC of the score as a detector of corrupted samples (0.5: no information, 1: perfect);
* the fraction of corrupted samples among the top 40 % by score (the noise rate, 0.4, is chance);
* the fraction of corrupted samples whose score is above every clean sample's (the Data
  Parameters paper reports 95 % for sigma on noisy CIFAR within 20 epochs).

Larger score = more likely corrupted for every score. The callback runs in the driver while the
next round trains, and the driver notices finished rounds only when it polls, often several rounds
late; so the store itself (``RoundEndStore``) copies the score columns when rank 0 records a round's
metrics, which happens after every rank's byproducts of that round are in and before any rank asks
for the next subset. The callback reads that copy: exactly the scores at the end of each round.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
from sklearn.metrics import roc_auc_score

from scorer_service.core.wire.answers import RoundSummary
from scorer_service.ray.actor import create_store
from scorer_service.store import HardnessStore
from trainers.benchmarks.harness import ProgressFn, drop_store, markdown_table, pyplot, save_figure
from trainers.datasets import Dataset, load_dataset
from trainers.driver import run_training
from trainers.train_config import TrainConfig

TOP_FRACTION = 0.4
SCORE_COLUMNS = ("dih", "last_loss", "docl", "log_sigma")
# All data every round, as in the Data Parameters paper's training (no curriculum subset).
FULL_BUDGET = {"budget_start": 1.0, "budget_factor": 1.0, "budget_floor": 1.0, "budget_cap": 1.0}


@dataclass(frozen=True)
class ScoreRun:
    """One training run and the store columns read from it: (label, column)."""

    label: str
    scores: tuple[tuple[str, str], ...]
    config: dict[str, Any] = field(default_factory=dict)


RUNS: tuple[ScoreRun, ...] = (
    ScoreRun(
        "dihcl-exp, metric loss",
        (("DIH (loss)", "dih"), ("last loss", "last_loss")),
        {"method": "dihcl-exp", "metric": "loss"},
    ),
    ScoreRun(
        "dihcl-exp, metric dloss", (("DIH (dloss)", "dih"),), {"method": "dihcl-exp", "metric": "dloss"}
    ),
    ScoreRun("dihcl-exp, metric flip", (("DIH (flip)", "dih"),), {"method": "dihcl-exp", "metric": "flip"}),
    ScoreRun("docl", (("DoCL score", "docl"),), {"method": "docl"}),
    ScoreRun(
        "random, all data, data params (instance)",
        (("sigma (instance)", "log_sigma"),),
        {"method": "random", "data_params": "instance", **FULL_BUDGET},
    ),
    ScoreRun(
        "random, all data, data params (joint)",
        (("sigma_inst (joint)", "log_sigma"),),
        {"method": "random", "data_params": "joint", **FULL_BUDGET},
    ),
)
QUICK_RUNS = ("dihcl-exp, metric loss", "docl", "random, all data, data params (instance)")


@dataclass
class Settings:
    dataset: str
    runs: tuple[ScoreRun, ...]
    epochs: int = 30
    warm_start: int = 5
    cycle_length: int = 5
    seed: int = 0

    @classmethod
    def full(cls) -> Settings:
        return cls("synthetic:n=5000,classes=10,noise=0.4", RUNS)

    @classmethod
    def quick(cls) -> Settings:
        return cls("synthetic:n=2000,classes=10,noise=0.4", tuple(r for r in RUNS if r.label in QUICK_RUNS))


class RoundEndStore(HardnessStore):
    """A store that also keeps a copy of the score columns as they are at the end of every round."""

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.round_end: dict[int, dict[str, np.ndarray]] = {}

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        super().record_round(round_, metrics)
        self.round_end[round_] = {c: self.state.columns[c].copy() for c in SCORE_COLUMNS}

    def round_end_columns(self, round_: int, columns: list[str]) -> list[np.ndarray]:
        return [self.round_end[round_][c] for c in columns]


def ranking_quality(score: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """AUROC, corrupted share of the top ``TOP_FRACTION``, and corrupted share above every clean score."""
    s = np.asarray(score, dtype=np.float64)
    # A never-observed sample has no loss yet: rank it as least suspicious.
    s = np.where(np.isfinite(s), s, np.nanmin(s[np.isfinite(s)]) if np.isfinite(s).any() else 0.0)
    k = int(round(TOP_FRACTION * len(s)))
    top = np.argsort(-s, kind="stable")[:k]
    clean_max = s[~noisy].max() if (~noisy).any() else -np.inf
    return {
        "auroc": float(roc_auc_score(noisy, s)),
        "top_noisy_fraction": float(noisy[top].mean()),
        "noisy_above_all_clean": float((s[noisy] > clean_max).mean()) if noisy.any() else float("nan"),
    }


def _one(settings: Settings, sr: ScoreRun, data: Dataset, index: int, storage: str) -> dict[str, Any]:
    cfg = TrainConfig.create(
        run=f"bench-noisy-{index}",
        dataset=settings.dataset,
        epochs=settings.epochs,
        warm_start=settings.warm_start,
        cycle_length=settings.cycle_length,
        seed=settings.seed,
        workers=0,
        snapshot_dir=f"{storage}/snapshots",
        storage_path=f"{storage}/checkpoints",
        incarnation=f"bench-{index}",
        **sr.config,
    )
    rounds: list[dict[str, Any]] = []
    columns = [c for _, c in sr.scores]
    noisy = np.asarray(data.noisy, dtype=bool)

    def on_round(summary: RoundSummary, store: ray.actor.ActorHandle) -> None:
        values = ray.get(store.round_end_columns.remote(summary.round, columns))
        rounds.append(
            {
                "round": summary.round,
                "size": summary.size,
                "test_accuracy": summary.metrics["test_accuracy"],
                "scores": {
                    label: ranking_quality(v, noisy) for (label, _), v in zip(sr.scores, values, strict=True)
                },
            }
        )

    # Ray workers cannot import this package (it is not installed): ship the store class by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    store = create_store(cfg.store_config(data.n, data.num_classes), store_cls=RoundEndStore)
    try:
        s = run_training(cfg, store=store, out=lambda _line: None, on_round=on_round)
    finally:
        drop_store(cfg.run)
    return {
        "run": sr.label,
        "config": sr.config,
        "final_test_accuracy": s["final_test_accuracy"],
        "rounds": rounds,
    }


def run(settings: Settings, out: Path, progress: ProgressFn) -> dict[str, Any]:
    data = load_dataset(settings.dataset, settings.seed)
    noisy = np.asarray(data.noisy, dtype=bool)
    storage = tempfile.mkdtemp(prefix="bench-noisy-")
    runs = []
    try:
        for i, sr in enumerate(settings.runs):
            progress("noisy", i, len(settings.runs), sr.label)
            runs.append(_one(settings, sr, data, i, storage))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    progress("noisy", len(settings.runs), len(settings.runs), "done")
    result = {
        "settings": asdict(settings),
        "n": data.n,
        "noisy": int(noisy.sum()),
        "noise_rate": float(noisy.mean()),
        "top_fraction": TOP_FRACTION,
        "runs": runs,
    }
    result["plot"] = plot(result, out)
    return result


def _at(rounds: list[dict[str, Any]], number: int) -> dict[str, Any] | None:
    """The record of 1-based round ``number``."""
    return next((r for r in rounds if r["round"] == number - 1), None)


def _series(result: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [(r["run"], label, r["rounds"]) for r in result["runs"] for label in r["rounds"][0]["scores"]]


def table(result: dict[str, Any]) -> str:
    epochs = result["settings"]["epochs"]
    checkpoints = [c for c in (result["settings"]["warm_start"], 10, 20, epochs) if c <= epochs]
    checkpoints = sorted(set(checkpoints))
    head = (
        ["score", "run"]
        + [f"AUROC r{c}" for c in checkpoints]
        + [f"top-40 % noisy r{epochs}", "noisy above all clean r20", f"test acc r{epochs} %"]
    )
    rows = []
    for run_label, label, rounds in _series(result):
        at = {c: _at(rounds, c) for c in (*checkpoints, 20)}
        last = rounds[-1]
        r20 = at.get(20)
        rows.append(
            [label, run_label]
            + [f"{at[c]['scores'][label]['auroc']:.3f}" if at[c] else "n/a" for c in checkpoints]
            + [
                f"{last['scores'][label]['top_noisy_fraction']:.3f}",
                f"{r20['scores'][label]['noisy_above_all_clean']:.3f}" if r20 else "n/a",
                f"{100 * last['test_accuracy']:.2f}",
            ]
        )
    spec = result["settings"]["dataset"]
    intro = (
        f"`{spec}`, seed {result['settings']['seed']}: {result['noisy']:,} of {result['n']:,} training "
        f"labels corrupted ({100 * result['noise_rate']:.1f} %). rN = after round N of {epochs}; chance "
        f"is AUROC 0.5 and top-40 % noisy = {result['noise_rate']:.2f}."
    )
    return intro + "\n\n" + markdown_table(head, rows, "ll" + "r" * (len(head) - 2))


def plot(result: dict[str, Any], out: Path) -> str | None:
    plt = pyplot()
    if plt is None or not result["runs"]:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for _, label, rounds in _series(result):
        x = [r["round"] + 1 for r in rounds]
        a1.plot(x, [r["scores"][label]["auroc"] for r in rounds], label=label)
        a2.plot(x, [r["scores"][label]["top_noisy_fraction"] for r in rounds], label=label)
    a1.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    a2.axhline(result["noise_rate"], color="grey", linestyle=":", linewidth=1)
    a1.set_ylabel("AUROC: score ranks corrupted above clean")
    a2.set_ylabel(f"corrupted share of the top {100 * result['top_fraction']:.0f} %")
    for ax in (a1, a2):
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    a1.legend(fontsize=7)
    return save_figure(fig, out / "noisy.png")


def check(result: dict[str, Any]) -> list[str]:
    problems = []
    for run_label, label, rounds in _series(result):
        for r in rounds:
            q = r["scores"][label]
            if not (0.0 <= q["auroc"] <= 1.0 and 0.0 <= q["top_noisy_fraction"] <= 1.0):
                problems.append(f"{run_label} {label} round {r['round']}: {q}")
    return problems

"""What each curriculum buys at equal epochs: test accuracy, sample passes and wall time, per method
and dataset, over seeds, and the sample passes each method needs to reach random's final accuracy;
with and without ``--denoise`` and the diversity term; and how well the store's label-noise
estimate finds the corrupted labels, next to cleanlab's ``find_label_issues`` on the same data.

Every run is ``trainers.driver.run_training`` with the same schedule (rounds, warm start, cycles,
cyclic cosine learning rate) and Ray Train's local mode (``workers=0``: one process, no DDP), so
the methods differ only in what the store selects (and, for two variants, in the loss or the
per-layer learning rates). Test accuracy and subset size of every round come from the
``on_round`` callback; the noise estimate is the store's ``noise`` column after the last round.
cleanlab gets out-of-sample predicted probabilities from K-fold cross-validation with the same
model and schedule (``trainers.benchmarks.cleanlab_baseline``), its extra training counted in sample passes.
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray

from scorer_service.core.wire.answers import RoundSummary
from scorer_service.ray.actor import get_store
from trainers.benchmarks.cleanlab_baseline import FOLDS, cleanlab_detection, detection
from trainers.benchmarks.harness import (
    ProgressFn,
    bench_config,
    drop_store,
    markdown_table,
    mean_std,
    pyplot,
    save_figure,
)
from trainers.datasets import load_dataset
from trainers.driver import run_training


@dataclass(frozen=True)
class Variant:
    label: str
    method: str
    metric: str = "loss"
    data_params: str | None = None
    lerac: bool = False
    denoise: bool = False
    diversity: str = "none"


VARIANTS: tuple[Variant, ...] = (
    Variant("random", "random"),
    Variant("random + denoise", "random", denoise=True),
    Variant("dihcl-greedy", "dihcl-greedy"),
    Variant("dihcl-rand", "dihcl-rand"),
    Variant("dihcl-exp", "dihcl-exp"),
    Variant("dihcl-exp + denoise", "dihcl-exp", denoise=True),
    Variant("dihcl-exp + diversity", "dihcl-exp", diversity="feature"),
    Variant("dihcl-exp + diversity + denoise", "dihcl-exp", diversity="feature", denoise=True),
    Variant("dihcl-beta flip", "dihcl-beta", metric="flip"),
    Variant("docl", "docl"),
    Variant("docl + denoise", "docl", denoise=True),
    Variant("spl", "spl"),
    Variant("spl + denoise", "spl", denoise=True),
    Variant("mcl", "mcl"),
    Variant("mcl + denoise", "mcl", denoise=True),
    Variant("dihcl-exp + data params (joint)", "dihcl-exp", data_params="joint"),
    Variant("dihcl-exp + lerac", "dihcl-exp", lerac=True),
)
QUICK_VARIANTS = ("random", "dihcl-exp", "dihcl-exp + denoise", "dihcl-exp + diversity", "spl")


@dataclass(frozen=True)
class Data:
    name: str
    spec: str
    model: str = "mlp"


DATASETS: tuple[Data, ...] = (
    Data("digits", "digits"),
    Data("synthetic, 0 % noise", "synthetic:n=2000,classes=10,noise=0"),
    Data("synthetic, 20 % noise", "synthetic:n=2000,classes=10,noise=0.2"),
    Data("synthetic, 40 % noise", "synthetic:n=2000,classes=10,noise=0.4"),
    Data("images (CNN), 0 % noise", "images:n=2000,classes=10,noise=0", "cnn"),
    Data("images (CNN), 40 % noise", "images:n=2000,classes=10,noise=0.4", "cnn"),
)


@dataclass
class Settings:
    variants: tuple[Variant, ...]
    datasets: tuple[Data, ...]
    seeds: tuple[int, ...]
    epochs: int = 30
    warm_start: int = 5
    cycle_length: int = 5

    @classmethod
    def full(cls) -> Settings:
        return cls(VARIANTS, DATASETS, (0, 1, 2))

    @classmethod
    def quick(cls) -> Settings:
        quick = tuple(v for v in VARIANTS if v.label in QUICK_VARIANTS)
        return cls(quick, tuple(d for d in DATASETS if d.model == "mlp"), (0,), cleanlab=False)

    cleanlab: bool = True


def _one(settings: Settings, data: Data, v: Variant, seed: int, index: int, storage: str) -> dict[str, Any]:
    cfg = bench_config(
        f"bench-outcomes-{index}",
        data.spec,
        data.model,
        settings,
        seed,
        storage,
        method=v.method,
        metric=v.metric,
        data_params=v.data_params,
        lerac=v.lerac,
        denoise=v.denoise,
        diversity=v.diversity,
    )
    rounds: list[dict[str, Any]] = []

    def on_round(summary: RoundSummary, _store: Any) -> None:
        rounds.append(
            {
                "size": summary.size,
                "test_accuracy": summary.metrics["test_accuracy"],
                # --denoise's evidence, recorded by the round that decided it (see core.label_noise)
                "never_correct_share": (summary.details or {}).get("noise_never_correct_share"),
            }
        )

    try:
        s = run_training(cfg, out=lambda _line: None, on_round=on_round)
        noise = ray.get(get_store(cfg.run).column.remote("noise"))
    finally:
        drop_store(cfg.run)
    passes = 0
    for r in rounds:
        passes += r["size"]
        r["passes"] = passes
    return {
        "variant": v.label,
        "seed": seed,
        "detection": detection(noise, load_dataset(data.spec, seed).noisy),
        "final_test_accuracy": s["final_test_accuracy"],
        "best_test_accuracy": s["best_test_accuracy"],
        "sample_passes": s["sample_passes"],
        "epochs_equivalent": s["epochs_equivalent"],
        "wall_s": s["wall_s"],
        "rounds": rounds,
    }


def passes_to_reach(rounds: list[dict[str, Any]], target: float) -> int | None:
    """Cumulative sample passes at the end of the first round whose test accuracy is >= ``target``."""
    return next((r["passes"] for r in rounds if r["test_accuracy"] >= target), None)


def summarize(runs: list[dict[str, Any]], variants: list[str]) -> list[dict[str, Any]]:
    """One row per variant; the target is random's mean final accuracy on the same dataset."""
    random_runs = [r for r in runs if r["variant"] == "random"]
    target = statistics.fmean(r["final_test_accuracy"] for r in random_runs) if random_runs else None
    rows = []
    for label in variants:
        mine = [r for r in runs if r["variant"] == label]
        if not mine:
            continue
        acc_mean, acc_std = mean_std([100 * r["final_test_accuracy"] for r in mine])
        reach = [passes_to_reach(r["rounds"], target) for r in mine] if target is not None else []
        reached = [p for p in reach if p is not None]
        to_target = statistics.fmean(reached) if reached else None
        found = [r["detection"] for r in mine if r.get("detection")]
        rows.append(
            {
                "variant": label,
                "seeds": len(mine),
                "noise_auroc": statistics.fmean(d["auroc"] for d in found) if found else None,
                "noise_precision": statistics.fmean(d["precision_at_noise_rate"] for d in found)
                if found
                else None,
                "final_acc_mean": acc_mean,
                "final_acc_std": acc_std,
                "best_acc_mean": 100 * statistics.fmean(r["best_test_accuracy"] for r in mine),
                "sample_passes": statistics.fmean(r["sample_passes"] for r in mine),
                "epochs_equivalent": statistics.fmean(r["epochs_equivalent"] for r in mine),
                "wall_s": statistics.fmean(r["wall_s"] for r in mine),
                "target_acc": None if target is None else 100 * target,
                "reached": len(reached),
                "passes_to_target": to_target,
            }
        )
    # Speed-up: random's passes to its own mean final accuracy over this method's passes to it.
    base = next((r["passes_to_target"] for r in rows if r["variant"] == "random"), None)
    for r in rows:
        r["speedup_vs_random"] = base / r["passes_to_target"] if base and r["passes_to_target"] else None
    return rows


def verdict(rows: list[dict[str, Any]]) -> str:
    """Which variant had the best mean final accuracy, and whether it beat random by more than noise."""
    best = max(rows, key=lambda r: r["final_acc_mean"])
    rnd = next((r for r in rows if r["variant"] == "random"), None)
    if rnd is None:
        return f"best: {best['variant']} ({best['final_acc_mean']:.2f} %)"
    if best is rnd:
        return f"random has the best mean final accuracy ({rnd['final_acc_mean']:.2f} %)"
    gap = best["final_acc_mean"] - rnd["final_acc_mean"]
    noise = math.hypot(best["final_acc_std"], rnd["final_acc_std"])
    within = "more than" if gap > noise else "within"
    return (
        f"best: {best['variant']} {best['final_acc_mean']:.2f} % vs random {rnd['final_acc_mean']:.2f} % "
        f"(+{gap:.2f} points, {within} one combined std of {noise:.2f})"
    )


def run(settings: Settings, out: Path, progress: ProgressFn) -> dict[str, Any]:
    total = len(settings.datasets) * len(settings.variants) * len(settings.seeds)
    labels = [v.label for v in settings.variants]
    datasets = []
    storage = tempfile.mkdtemp(prefix="bench-outcomes-")
    done = 0
    try:
        for data in settings.datasets:
            runs = []
            for v in settings.variants:
                for seed in settings.seeds:
                    progress("outcomes", done, total, f"{data.name}: {v.label} seed {seed}")
                    runs.append(_one(settings, data, v, seed, done, storage))
                    done += 1
            rows = summarize(runs, labels)
            entry = {
                "dataset": data.name,
                "spec": data.spec,
                "rows": rows,
                "verdict": verdict(rows),
                "runs": runs,
            }
            noisy = load_dataset(data.spec, 0).noisy
            if settings.cleanlab and noisy is not None and noisy.any():
                progress("outcomes", done, total, f"{data.name}: cleanlab")
                entry["cleanlab"] = [
                    cleanlab_detection(data.spec, data.model, seed, settings.epochs)
                    for seed in settings.seeds
                ]
            datasets.append(entry)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    progress("outcomes", total, total, "done")
    result = {
        "settings": asdict(settings),
        "mode": "Ray Train local mode (workers=0, one process)",
        "datasets": datasets,
    }
    result["plot"] = plot(result, out)
    return result


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def table(result: dict[str, Any]) -> str:
    s = result["settings"]
    parts = [
        f"{s['epochs']} rounds each ({s['warm_start']} warm-start rounds on all data, then cycles of "
        f"{s['cycle_length']}), seeds {', '.join(map(str, s['seeds']))}; {result['mode']}."
    ]
    head = [
        "method",
        "final test acc %",
        "best %",
        "sample passes",
        "epochs equiv.",
        "wall s",
        "passes to random's final acc",
        "reached",
        "speed-up vs random",
        "noise AUROC",
        "precision at noise rate",
    ]
    for d in result["datasets"]:
        rows = [
            [
                r["variant"],
                f"{r['final_acc_mean']:.2f} ± {r['final_acc_std']:.2f}",
                f"{r['best_acc_mean']:.2f}",
                round(r["sample_passes"]),
                f"{r['epochs_equivalent']:.1f}",
                f"{r['wall_s']:.1f}",
                _fmt(r["passes_to_target"], ",.0f"),
                f"{r['reached']}/{r['seeds']}",
                _fmt(r["speedup_vs_random"], ".2f") + ("x" if r["speedup_vs_random"] else ""),
                _fmt(r["noise_auroc"], ".3f"),
                _fmt(r["noise_precision"], ".3f"),
            ]
            for r in d["rows"]
        ]
        if d.get("cleanlab"):
            cl = d["cleanlab"]
            extra = f"+{statistics.fmean(c['extra_sample_passes'] for c in cl):,.0f} extra"
            auroc = f"{statistics.fmean(c['auroc'] for c in cl):.3f}"
            precision = f"{statistics.fmean(c['precision_at_noise_rate'] for c in cl):.3f}"
            rows.append(
                [f"cleanlab find_label_issues ({FOLDS}-fold)", "", "", extra, *[""] * 5, auroc, precision]
            )
        target = d["rows"][0]["target_acc"] if d["rows"] else None
        parts.append(
            f"**{d['dataset']}** (`{d['spec']}`; random's final accuracy {_fmt(target, '.2f')} %). "
            f"{d['verdict'][0].upper()}{d['verdict'][1:]}.\n\n" + markdown_table(head, rows, "lrrrrrrrrrr")
        )
    return "\n\n".join(parts)


def plot(result: dict[str, Any], out: Path) -> str | None:
    plt = pyplot()
    if plt is None or not result["datasets"]:
        return None
    k = len(result["datasets"])
    cols = 2 if k > 1 else 1
    fig, axes = plt.subplots(
        math.ceil(k / cols), cols, figsize=(11, 4.2 * math.ceil(k / cols)), squeeze=False
    )
    cmap = plt.get_cmap("tab10")
    labels = [v["label"] for v in result["settings"]["variants"]]
    for ax, d in zip(axes.flat, result["datasets"], strict=False):
        for i, label in enumerate(labels):
            runs = [r for r in d["runs"] if r["variant"] == label]
            if not runs:
                continue
            # The budget schedule is deterministic, so the rounds of every seed line up.
            n_rounds = min(len(r["rounds"]) for r in runs)
            x = [statistics.fmean(r["rounds"][j]["passes"] for r in runs) for j in range(n_rounds)]
            y = [
                100 * statistics.fmean(r["rounds"][j]["test_accuracy"] for r in runs) for j in range(n_rounds)
            ]
            style = "-" if i < 10 else "--"
            ax.plot(x, y, style, color=cmap(i % 10), label=label, linewidth=2.4 if label == "random" else 1.1)
        target = d["rows"][0]["target_acc"] if d["rows"] else None
        if target is not None:
            ax.axhline(target, color="grey", linestyle=":", linewidth=1)
        ax.set_title(d["dataset"], fontsize=10)
        ax.set_xlabel("cumulative sample passes")
        ax.set_ylabel("test accuracy % (mean over seeds)")
        # The first rounds' accuracy is far below the rest; the interesting part is the top.
        finals = [r["final_acc_mean"] for r in d["rows"]]
        best = max(r["best_acc_mean"] for r in d["rows"])
        ax.set_ylim(max(0, min(finals) - 15), min(100, best + 2))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[k:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    return save_figure(fig, out / "outcomes.png")


def check(result: dict[str, Any]) -> list[str]:
    problems = []
    for d in result["datasets"]:
        for r in d["runs"]:
            acc = r["final_test_accuracy"]
            if acc is None or not 0.0 <= acc <= 1.0:
                problems.append(f"{d['dataset']} {r['variant']} seed {r['seed']}: final accuracy {acc}")
            if r["sample_passes"] <= 0 or len(r["rounds"]) != result["settings"]["epochs"]:
                problems.append(f"{d['dataset']} {r['variant']} seed {r['seed']}: {len(r['rounds'])} rounds")
    return problems

"""The savings benchmark's summary, tables and plot, from its saved runs (:mod:`.savings` runs them).

A method is within target when its mean final accuracy is at most max(0.2 points, full data's std over
seeds) below full data's; its time to full's accuracy is, per seed, the training wall-clock at the end
of its first round within 0.2 points of that seed's ``full`` run's final accuracy.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from trainers.benchmarks.harness import markdown_table, mean_std, pyplot, save_figure

# The references every method is compared with (method labels of :mod:`.savings`).
PLAIN, FULL = "plain (no store)", "full"
PANELS_PER_ROW = 4


def time_to(rounds: list[dict[str, Any]], target: float) -> float | None:
    return next((r["t"] for r in rounds if r["test_accuracy"] >= target), None)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload: the target and one row per method (means over seeds, ratios to full and plain)."""
    out = []
    for name in dict.fromkeys(r["workload"] for r in runs):
        mine = [r for r in runs if r["workload"] == name]
        full = [r for r in mine if r["method"] == FULL]
        if not full:
            continue
        full_mean, full_std = mean_std([100 * r["final_test_accuracy"] for r in full])
        tolerance = max(0.2, full_std)
        # Each seed's target is its own full-data run's final accuracy less 0.2 points.
        target = {r["seed"]: r["final_test_accuracy"] - 0.002 for r in full}
        base = statistics.fmean(r["train_s"] for r in full)
        plain = [r["train_s"] for r in mine if r["method"] == PLAIN]
        rows = []
        for label in dict.fromkeys(r["method"] for r in mine):
            rs = [r for r in mine if r["method"] == label]
            acc, std = mean_std([100 * r["final_test_accuracy"] for r in rs])
            reach = [time_to(r["rounds"], target[r["seed"]]) for r in rs if r["seed"] in target]
            reached = [t for t in reach if t is not None]
            all_reached = bool(reached) and len(reached) == len(reach)
            train = statistics.fmean(r["train_s"] for r in rs)
            rows.append(
                {
                    "method": label,
                    "seeds": len(rs),
                    "acc": acc,
                    "std": std,
                    "vs_full": acc - full_mean,
                    "within": acc >= full_mean - tolerance,
                    "passes": statistics.fmean(r["sample_passes"] for r in rs),
                    "train_s": train,
                    "startup_s": statistics.fmean(r["startup_s"] for r in rs),
                    "eval_s": statistics.fmean(r.get("eval_s", 0.0) for r in rs),
                    "wall_vs_full": train / base,
                    "wall_vs_plain": train / statistics.fmean(plain) if plain else None,
                    "to_target_s": statistics.fmean(reached) if all_reached else None,
                    "reached": len(reached),
                    "compared": len(reach),
                }
            )
        passes = next(r["passes"] for r in rows if r["method"] == FULL)
        for r in rows:
            r["passes_vs_full"] = r["passes"] / passes
        out.append({"workload": name, "full_acc": full_mean, "full_std": full_std, "rows": rows})
    return out


def _f(x: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec) + suffix


def table(result: dict[str, Any]) -> str:
    s = result["settings"]
    parts = [
        f"{s['epochs']} rounds ({s['warm_start']} warm-start rounds, then cycles of {s['cycle_length']}), "
        f"seeds {', '.join(map(str, s['seeds']))}; Ray Train local mode (one process). Wall-clock is "
        "training's (first round's start to last round's end, less the test-set evaluation after each "
        "round); evaluation and start-up are reported beside it."
    ]
    head = [
        "method",
        "final test acc %",
        "vs full",
        "within target",
        "passes vs full",
        "train s",
        "wall vs full",
        "wall vs plain",
        "s to full's acc - 0.2 (same seed)",
        "eval s",
        "start-up s",
    ]
    for d in result["workloads"]:
        rows = [
            [
                r["method"],
                f"{r['acc']:.2f} ± {r['std']:.2f}",
                f"{r['vs_full']:+.2f}",
                "yes" if r["within"] else "no",
                f"{r['passes_vs_full']:.2f}",
                f"{r['train_s']:.1f}",
                f"{r['wall_vs_full']:.2f}",
                _f(r["wall_vs_plain"], ".3f"),
                _f(r["to_target_s"], ".1f")
                + ("" if r["reached"] == r["seeds"] else f" ({r['reached']}/{r['seeds']})"),
                f"{r['eval_s']:.1f}",
                f"{r['startup_s']:.1f}",
            ]
            for r in d["rows"]
        ]
        parts.append(
            f"**{d['workload']}** (full data: {d['full_acc']:.2f} ± {d['full_std']:.2f} %)\n\n"
            + markdown_table(head, rows, "lrrrrrrrrrr")
        )
    return "\n\n".join(parts)


def check(result: dict[str, Any]) -> list[str]:
    """Runs whose accuracy is not a number, or whose rounds did not all finish."""
    planned = result["settings"]["epochs"]  # runs saved before runs kept their own count
    wrong = []
    for r in result["runs"]:
        epochs = r.get("epochs", planned)
        if len(r["rounds"]) != epochs or r["final_test_accuracy"] is None:
            rounds = len(r["rounds"])
            wrong.append(f"{r['workload']} {r['method']} seed {r['seed']}: {rounds} of {epochs} rounds")
    return wrong


def plot(result: dict[str, Any], out: Path) -> str | None:
    """Test accuracy against training wall-clock, one panel per workload (seed-mean per round)."""
    plt = pyplot()
    if plt is None or not result["workloads"]:
        return None
    names = [d["workload"] for d in result["workloads"]]
    cols = min(PANELS_PER_ROW, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        runs = [r for r in result["runs"] if r["workload"] == name]
        for label in dict.fromkeys(r["method"] for r in runs):
            rs = [r["rounds"] for r in runs if r["method"] == label]
            length = min(len(x) for x in rs)
            t = [statistics.fmean(x[i]["t"] for x in rs) for i in range(length)]
            acc = [100 * statistics.fmean(x[i]["test_accuracy"] for x in rs) for i in range(length)]
            ax.plot(t, acc, marker=".", label=label)
        ax.set_title(name)
        ax.set_xlabel("training wall-clock, s (evaluation excluded)")
        ax.set_ylabel("test accuracy, %")
        lo = min(100 * r["rounds"][-1]["test_accuracy"] for r in runs)
        ax.set_ylim(max(0.0, lo - 10), None)
        ax.legend(fontsize=7)  # methods differ between clean and noisy workloads
    return save_figure(fig, out / "savings.png")


def report(path: Path) -> dict[str, Any]:
    """The result of the runs saved in ``path``, summarized and plotted again (nothing is run)."""
    if not path.exists():
        raise SystemExit(f"--report: no such file: {path}")
    saved = json.loads(path.read_text())
    runs = saved["runs"]
    result = {"settings": saved.get("settings", {}), "runs": runs, "workloads": summarize(runs)}
    result["plot"] = plot(result, path.parent)
    return result

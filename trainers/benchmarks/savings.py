"""What the store saves in wall-clock against training on all the data, and against InfoBatch.

Every run is ``trainers.driver.run_training`` in Ray Train's local mode (one process) with the same
model, schedule and learning rate; methods differ only in what each round trains on and in the loss
weights the store hands out. Per run: final test accuracy, sample passes, the wall-clock of training
(the first round's start to the last round's end: store, selection, streaming and barriers included)
less the test-set evaluation after each round, which only draws the accuracy curve and costs every
method the same (its seconds are reported beside it, as is start-up: the run's whole wall-clock less
training and evaluation). ``plain`` is the same loop over
all data with no store at all (``--plain``): the floor ``full`` through the store is compared with.
A method is within target when its mean final accuracy is at most max(0.2 points, full's std over
seeds) below ``full``'s; its time to full's accuracy is, per seed, the training wall-clock at the end
of its first round within 0.2 points of that seed's ``full`` run's final accuracy.

    python -m trainers.benchmarks.savings [--workloads NAME ...] [--methods LABEL ...] [--seeds 0 1 2]
        [--json F]

Runs are saved to the JSON file one by one, and a rerun with the same file skips those already there.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from scorer_service.core.wire.answers import RoundSummary
from trainers.benchmarks.harness import (
    ProgressFn,
    bench_config,
    drop_store,
    markdown_table,
    mean_std,
    pyplot,
    save_figure,
    write_json,
)

PLAIN, FULL, INFOBATCH = "plain (no store)", "full", "infobatch"
PANELS_PER_ROW = 4


@dataclass(frozen=True)
class Method:
    label: str
    settings: dict[str, Any] = field(default_factory=dict)
    noisy_only: bool = False
    clean_only: bool = False


# Leaner schedules than the default's: half (or 40 %) of the data in the first selection cycle (x0.85
# per cycle), importance-weighted losses, the last eighth of the rounds on all data.
LEAN = {"budget_start": 0.5, "anneal": 0.125}
LEAN_LABEL = "budget 0.5, unbiased, anneal 0.125"
LEANER = {"budget_start": 0.4, "anneal": 0.125}
LEANER_LABEL = "budget 0.4, unbiased, anneal 0.125"

METHODS: tuple[Method, ...] = (
    Method(PLAIN, {"plain": True}),
    Method(FULL, {"method": "full"}),
    Method(INFOBATCH, {"method": "infobatch"}),
    Method("random, budget 0.5, anneal 0.125", {"method": "random", **LEAN}),
    Method("dihcl-exp", {"method": "dihcl-exp"}),
    Method(f"dihcl-exp, {LEAN_LABEL}", {"method": "dihcl-exp", "unbiased": True, **LEAN}),
    Method("random, budget 0.4, anneal 0.125", {"method": "random", **LEANER}, clean_only=True),
    Method(
        f"dihcl-exp, {LEANER_LABEL}", {"method": "dihcl-exp", "unbiased": True, **LEANER}, clean_only=True
    ),
    Method("dihcl-exp + denoise", {"method": "dihcl-exp", "denoise": True}, noisy_only=True),
    Method(
        f"dihcl-exp, {LEAN_LABEL} + denoise",
        {"method": "dihcl-exp", "unbiased": True, "denoise": True, **LEAN},
        noisy_only=True,
    ),
    Method("dihcl-greedy", {"method": "dihcl-greedy"}, clean_only=True),
    Method("docl", {"method": "docl"}, clean_only=True),
    Method("spl", {"method": "spl"}, clean_only=True),
    Method("mcl", {"method": "mcl"}, clean_only=True),
)


@dataclass(frozen=True)
class Workload:
    name: str
    spec: str
    model: str
    noisy: bool = False


WORKLOADS: tuple[Workload, ...] = (
    Workload("fashion-mnist", "fashion-mnist:n=30000", "convnet"),
    Workload("fashion-mnist 40 %", "fashion-mnist:n=30000,noise=0.4", "convnet", True),
    Workload("images", "images:n=2000,classes=10,noise=0", "cnn"),
    Workload("images 40 %", "images:n=2000,classes=10,noise=0.4", "cnn", True),
    Workload("digits", "digits", "mlp"),
    Workload("synthetic", "synthetic:n=2000,classes=10,noise=0", "mlp"),
    Workload("synthetic 40 %", "synthetic:n=2000,classes=10,noise=0.4", "mlp", True),
)


@dataclass
class Settings:
    workloads: tuple[Workload, ...]
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    epochs: int = 15
    warm_start: int = 3
    cycle_length: int = 4
    json: str | None = None

    @classmethod
    def full(cls) -> Settings:
        return cls(WORKLOADS, METHODS, (0, 1, 2))

    @classmethod
    def quick(cls) -> Settings:
        labels = (PLAIN, FULL, "random", INFOBATCH, "dihcl-exp")
        return cls(
            tuple(w for w in WORKLOADS if w.name == "digits"),
            tuple(m for m in METHODS if m.label in labels),
            (0,),
            epochs=6,
            warm_start=2,
            cycle_length=2,
        )


def applies(method: Method, workload: Workload) -> bool:
    return not (method.noisy_only and not workload.noisy) and not (method.clean_only and workload.noisy)


def _one(settings: Settings, w: Workload, m: Method, seed: int, storage: str) -> dict[str, Any]:
    from trainers.driver import run_training

    cfg = bench_config("bench-savings", w.spec, w.model, settings, seed, storage, **m.settings)
    rounds: list[dict[str, Any]] = []

    def on_round(summary: RoundSummary, _store: Any) -> None:
        rounds.append({"size": summary.size, **summary.metrics})

    load = os.getloadavg()[0]  # the machine is shared: how busy it was is part of the measurement
    try:
        s = run_training(cfg, out=lambda _line: None, on_round=on_round, replace=True)
    finally:
        if not cfg.plain:
            drop_store(cfg.run)
    if cfg.plain:
        rounds = [{"size": r["samples"], **r} for r in s["round_metrics"]]
    start = rounds[0]["started_s"]
    passes, evaluating = 0, 0.0
    for r in rounds:
        passes += r["size"]
        evaluating += r.get("eval_s", 0.0)
        r["passes"], r["t"] = passes, r["ended_s"] - start - evaluating
    train_s = rounds[-1]["t"]
    return {
        "workload": w.name,
        "method": m.label,
        "seed": seed,
        "epochs": settings.epochs,
        "final_test_accuracy": s["final_test_accuracy"],
        "sample_passes": s["sample_passes"],
        "train_s": train_s,
        "startup_s": s["wall_s"] - train_s - evaluating,
        "eval_s": evaluating,
        "load_avg": [load, os.getloadavg()[0]],
        "rounds": [
            {k: r[k] for k in ("t", "passes", "test_accuracy", "size", "eval_s") if k in r} for r in rounds
        ],
    }


def run(settings: Settings, out: Path, progress: ProgressFn) -> dict[str, Any]:
    path = Path(settings.json) if settings.json else None
    runs: list[dict[str, Any]] = []
    if path is not None and path.exists():
        import json

        runs = json.loads(path.read_text()).get("runs", [])
    done = {(r["workload"], r["method"], r["seed"]) for r in runs}
    # Seeds outermost and methods interleaved, their order reversed every other seed: a machine that
    # drifts slower or faster over the runs hits every method alike, not the later ones of each seed.
    plan = [
        (w, m, seed)
        for w in settings.workloads
        for i, seed in enumerate(settings.seeds)
        for m in (settings.methods[::-1] if i % 2 else settings.methods)
        if applies(m, w) and (w.name, m.label, seed) not in done
    ]
    with tempfile.TemporaryDirectory(prefix="bench-savings-") as storage:
        warm: set[str] = set()
        for i, (w, m, seed) in enumerate(plan):
            if w.name not in warm:  # first use of the data, the model and compiled code: not timed
                progress("savings", i, len(plan), f"{w.name}: warm-up")
                _one(replace(settings, epochs=2, warm_start=1, cycle_length=1), w, METHODS[1], seed, storage)
                warm.add(w.name)
            progress("savings", i, len(plan), f"{w.name}: {m.label} seed {seed}")
            runs.append(_one(settings, w, m, seed, storage))
            if path is not None:
                write_json(path, {"settings": asdict(settings), "runs": runs})
    progress("savings", len(plan), len(plan), "done")
    result = {"settings": asdict(settings), "runs": runs, "workloads": summarize(runs)}
    result["plot"] = plot(result, out)
    return result


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


def _missed(row: dict[str, Any]) -> str:
    return "" if row["reached"] == row["compared"] else f" ({row['reached']}/{row['compared']} reached)"


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainers.benchmarks.savings", description=__doc__.splitlines()[0]
    )
    p.add_argument("--workloads", nargs="*", help=f"default: all of {', '.join(w.name for w in WORKLOADS)}")
    p.add_argument("--methods", nargs="*", help="method labels (default: all)")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="digits only, 6 rounds, 1 seed")
    p.add_argument("--json", type=Path, default=Path("bench_out/savings.json"))
    p.add_argument("--report", action="store_true", help="only rebuild the tables and the plot from --json")
    args = p.parse_args(argv)
    if args.report:
        return _finish(report(args.json), args.json)
    settings = Settings.quick() if args.quick else Settings.full()
    if not args.quick:
        settings.seeds, settings.epochs = tuple(args.seeds), args.epochs
    if args.workloads:
        settings.workloads = tuple(w for w in WORKLOADS if w.name in args.workloads)
    if args.methods:
        settings.methods = tuple(m for m in METHODS if m.label in args.methods)
    settings.json = str(args.json)
    args.json.parent.mkdir(parents=True, exist_ok=True)

    import ray

    from trainers.benchmarks.__main__ import _start_ray
    from trainers.benchmarks.harness import Progress

    _start_ray()
    try:
        result = run(settings, args.json.parent, Progress())
    finally:
        ray.shutdown()
    return _finish(result, args.json)


def report(path: Path) -> dict[str, Any]:
    """The result of the runs saved in ``path``, summarized and plotted again (nothing is run)."""
    import json

    if not path.exists():
        raise SystemExit(f"--report: no such file: {path}")
    saved = json.loads(path.read_text())
    runs = saved["runs"]
    result = {"settings": saved.get("settings", {}), "runs": runs, "workloads": summarize(runs)}
    result["plot"] = plot(result, path.parent)
    return result


def _finish(result: dict[str, Any], path: Path) -> int:
    write_json(path, result)
    print(table(result))
    problems = check(result)
    for line in problems:
        print(f"problem: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the store saves in wall-clock against training on all the data, and against InfoBatch.

Every run is ``trainers.driver.run_training`` in Ray Train's local mode (one process) with the same
model, schedule and learning rate; methods differ only in what each round trains on and in the loss
weights the store hands out. Per run: final test accuracy, sample passes, the wall-clock of training
(the first round's start to the last round's end: store, selection, streaming and barriers included)
less the test-set evaluation after each round, which only draws the accuracy curve and costs every
method the same (its seconds are reported beside it, as is start-up: the run's whole wall-clock less
training and evaluation). ``plain`` is the same loop over all data with no store at all (``--plain``):
the floor ``full`` through the store is compared with. What "within target" means, and the tables and
the plot: :mod:`.savings_report`.

    python -m trainers.benchmarks.savings [--workloads NAME ...] [--methods LABEL ...] [--seeds 0 1 2]
        [--epochs 15] [--json F] [--report]

Runs are saved to the JSON file one by one, and a rerun with the same file skips those already there;
``--report`` only rebuilds the tables and the plot from the file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from scorer_service.core.wire.answers import RoundSummary
from trainers.benchmarks.harness import ProgressFn, bench_config, drop_store, write_json
from trainers.benchmarks.savings_report import FULL, PLAIN, check, plot, report, summarize, table

INFOBATCH = "infobatch"


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


def _finish(result: dict[str, Any], path: Path) -> int:
    write_json(path, result)
    print(table(result))
    problems = check(result)
    for line in problems:
        print(f"problem: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

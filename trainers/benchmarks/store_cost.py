"""The store's own cost, round by round: ``full`` through the store against the same loop with none.

Two processes train the same workload with the same seed, each with ``trainers.driver.run_training``
in Ray Train's local mode on one shared local Ray: one ``--plain`` (the floor: no store at all), one
``--method full`` (every sample every round, through the store). They take turns a round at a time,
the order reversed every other round, so that a host that drifts slower or faster over minutes slows
both alike; the savings benchmark's whole runs, minutes apart, cannot resolve a few per cent. A
round's time runs from the start of its ``set_epoch`` (the slice fetched) to the return of its
``end_round`` (the last byproducts acknowledged, the round recorded), less its test-set evaluation;
the checkpoint after it, the same in both, waits before the other process's turn and is not counted,
and neither process trains before both have started up.

    python -m trainers.benchmarks.store_cost [--workload NAME] [--seeds 0 1] [--epochs 15] [--json F]

A rerun with the same ``--json`` file (same workload and rounds) measures only the seeds not in it
and summarizes them all.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainers.benchmarks.harness import bench_config, drop_store, machine, write_json
from trainers.benchmarks.savings import WORKLOADS, Settings, Workload

ROLES = ("plain", "full")
TURN_TIMEOUT_S = 1800.0


def _side(
    role: str, address: str, w: Workload, settings: Settings, seed: int, storage: str, turns: Any
) -> None:
    """One of the two processes: trains when given the turn and hands it back after each round."""
    import ray

    from curriculum.recorder import Recorder
    from curriculum.sampler import RoundSampler
    from scorer_service.ray.actor import NAMESPACE
    from trainers.driver import run_training
    from trainers.plain import PlainRecorder, PlainSampler

    go, done, results = turns
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # Ray Train logs every report at INFO
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    options = {"plain": True} if role == "plain" else {"method": "full"}
    cfg = bench_config(f"bench-store-cost-{role}", w.spec, w.model, settings, seed, storage, **options)
    sampler_cls, recorder_cls = (PlainSampler, PlainRecorder) if cfg.plain else (RoundSampler, Recorder)
    set_epoch, end_round = sampler_cls.set_epoch, recorder_cls.end_round
    rounds: list[dict[str, float]] = []

    # Instrumentation of this process's own copy of the recipe: the turns wrap its round boundaries.
    def take_turn(self: Any, epoch: int) -> None:
        # Started up, or the previous round's checkpoint written: the other process may go.
        done.release()
        go.acquire()
        rounds.append({"start": time.perf_counter(), "cpu_start": busy_cpu_s()})
        set_epoch(self, epoch)

    def end_turn(self: Any, metrics: Any = None) -> None:
        end_round(self, metrics)
        rounds[-1] |= {
            "end": time.perf_counter(),
            "cpu_end": busy_cpu_s(),
            "eval_s": float((metrics or {}).get("eval_s", 0.0)),
            "test_accuracy": float((metrics or {}).get("test_accuracy", float("nan"))),
        }

    sampler_cls.set_epoch, recorder_cls.end_round = take_turn, end_turn  # type: ignore[method-assign]
    try:
        run_training(cfg, out=lambda _line: None, replace=True)
    finally:
        if not cfg.plain:
            drop_store(cfg.run)
        results.put((role, [{"s": r["end"] - r["start"] - r["eval_s"], **r} for r in rounds if "end" in r]))
        done.release()
        ray.shutdown()


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (every process, every core) since boot: a turn's
    share says whether the store's cost is work it does or time it makes the trainer wait."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _wait(sem: Any, proc: Any, what: str) -> None:
    deadline = time.monotonic() + TURN_TIMEOUT_S
    while not sem.acquire(timeout=1.0):
        if not proc.is_alive():
            raise RuntimeError(f"the {what} process exited (code {proc.exitcode}) before its turn ended")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {what} process did not end its turn in {TURN_TIMEOUT_S:g} s")


def pair(address: str, workload: Workload, settings: Settings, seed: int, storage: str) -> dict[str, Any]:
    """One seed: the two processes' rounds, taken in turns (plain first in even rounds)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    sems = {role: (ctx.Semaphore(0), ctx.Semaphore(0)) for role in ROLES}
    procs = {
        role: ctx.Process(
            target=_side,
            args=(role, address, workload, settings, seed, storage, (*sems[role], results)),
            daemon=True,
        )
        for role in ROLES
    }
    for p in procs.values():
        p.start()
    try:
        for role in ROLES:  # both started up before either trains: start-up is not measured
            _wait(sems[role][1], procs[role], role)
        for r in range(settings.epochs):
            for role in ROLES if r % 2 == 0 else ROLES[::-1]:
                go, done = sems[role]
                go.release()
                _wait(done, procs[role], role)
        got = dict(results.get(timeout=60) for _ in ROLES)
    finally:
        for p in procs.values():
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    plain, full = (np.asarray([r["s"] for r in got[role]]) for role in ROLES)
    cpu = {role: sum(r["cpu_end"] - r["cpu_start"] for r in got[role]) for role in ROLES}
    return {
        "cpu_s": cpu,
        "seed": seed,
        "plain_s": float(plain.sum()),
        "full_s": float(full.sum()),
        "ratio": float(full.sum() / plain.sum()),
        "round_ratios": (full / plain).tolist(),
        "accuracy": {role: got[role][-1]["test_accuracy"] for role in ROLES},
        "rounds": got,
    }


def run(workload: Workload, settings: Settings, saved: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Every seed of ``settings`` on ``workload`` not among the ``saved`` pairs, on the connected Ray
    (else a local one of its own); the summary covers the saved pairs and the new ones."""
    import ray

    from trainers.benchmarks.__main__ import _start_ray

    done = {p["seed"] for p in saved}
    own = not ray.is_initialized()
    if own:
        _start_ray()
    try:
        address = ray.get_runtime_context().gcs_address
        with tempfile.TemporaryDirectory(prefix="bench-store-cost-") as storage:
            pairs = [pair(address, workload, settings, s, storage) for s in settings.seeds if s not in done]
    finally:
        if own:
            ray.shutdown()
    return summarize(workload.name, settings.epochs, [*saved, *pairs])


def summarize(workload: str, epochs: int, pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """All pairs' time through the store against the floor's, and the spread of the rounds' ratios."""
    per_round = np.concatenate([p["round_ratios"] for p in pairs])
    plain, full = sum(p["plain_s"] for p in pairs), sum(p["full_s"] for p in pairs)
    return {
        "workload": workload,
        "epochs": epochs,
        "seeds": [p["seed"] for p in pairs],
        "machine": machine(),
        "pairs": list(pairs),
        "ratio": full / plain,
        "round_ratio_median": float(np.median(per_round)),
        "round_ratio_p10_p90": [float(np.percentile(per_round, 10)), float(np.percentile(per_round, 90))],
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"store cost, {result['workload']}, {result['epochs']} rounds, turns a round at a time",
        "| seed | plain train s | full train s | full vs plain | round median | CPU s plain, full "
        "| final acc % |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in result["pairs"]:
        acc, cpu = p["accuracy"], p.get("cpu_s")  # runs saved before CPU was counted have none
        cpus = f"{cpu['plain']:.1f}, {cpu['full']:.1f}" if cpu else "n/a"
        lines.append(
            f"| {p['seed']} | {p['plain_s']:.1f} | {p['full_s']:.1f} | {p['ratio']:.3f} | "
            f"{np.median(p['round_ratios']):.3f} | {cpus} | "
            f"{100 * acc['plain']:.2f}, {100 * acc['full']:.2f} |"
        )
    lo, hi = result["round_ratio_p10_p90"]
    lines.append(
        f"all: full vs plain {result['ratio']:.3f}; per round median {result['round_ratio_median']:.3f} "
        f"(10th-90th percentile {lo:.3f}-{hi:.3f}); CPU s: the whole machine's busy seconds "
        "during the turns, evaluation included"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainers.benchmarks.store_cost", description=__doc__.splitlines()[0]
    )
    p.add_argument("--workload", default="fashion-mnist", choices=[w.name for w in WORKLOADS if not w.noisy])
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--json", type=Path, default=Path("bench_out/store_cost.json"))
    args = p.parse_args(argv)
    saved: list[dict[str, Any]] = []
    if args.json.exists():  # a rerun with the same file adds its new seeds to those measured before
        before = json.loads(args.json.read_text())
        if (before["workload"], before["epochs"]) == (args.workload, args.epochs):
            saved = before["pairs"]
    settings = Settings((), (), tuple(args.seeds), epochs=args.epochs)
    result = run(next(w for w in WORKLOADS if w.name == args.workload), settings, saved)
    write_json(args.json, result)
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

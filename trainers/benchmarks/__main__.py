"""Run the benchmark suites: tables on stdout, progress on stderr, files in the output folder.

The output folder gets each suite's JSON, PNG plots and a Markdown summary.

    python -m trainers.benchmarks [SUITE ...] [--quick] [--out DIR]

overhead, rest, outcomes and noisy run in this process on one local Ray instance; ingest, soak,
selection, scale and savings run as their own commands (``python -m trainers.benchmarks.ingest`` etc.,
which start their own Ray or subprocesses), after this process's Ray has been shut down.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

# Before ``import ray``: no token file and no usage reporting for a throwaway local cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from trainers.benchmarks.harness import (  # noqa: E402
    Progress,
    ProgressFn,
    child_env,
    describe,
    machine,
    start_local_ray,
    write_json,
)

IN_PROCESS = ("overhead", "rest", "outcomes", "noisy")
# name -> (arguments with --quick, arguments without, seconds before it is stopped as hung).
# The selection suite's own full mode (library comparison at n = 10k and 50k) takes far longer than
# this whole command is meant to; it runs as ``python -m trainers.benchmarks.selection`` on its own.
EXTERNAL: dict[str, tuple[list[str], list[str], float]] = {
    "ingest": (["--quick"], [], 900.0),
    "soak": (["--seconds", "20"], ["--seconds", "120"], 900.0),
    "selection": (["--quick"], ["--quick"], 1200.0),
    "scale": (["--quick"], [], 5400.0),
    "savings": (["--quick"], [], 6 * 3600.0),
}
SUITES = IN_PROCESS + tuple(EXTERNAL)
TITLES = {
    "overhead": "Streaming overhead in the training loop",
    "rest": "REST API and Parquet export",
    "outcomes": "Outcomes: accuracy and sample passes per method",
    "noisy": "Noisy labels: do the scores find the corrupted samples?",
    "ingest": "Ingest",
    "soak": "Soak",
    "selection": "Selection",
    "scale": "Scale: a store in shards",
    "savings": "Savings: wall-clock against full data and InfoBatch",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help=f"suites to run, in this order: {', '.join(SUITES)} (default: all)",
    )
    p.add_argument(
        "--quick", action="store_true", help="smaller settings for a smoke run (about 10 minutes on 2 cores)"
    )
    p.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for JSON, PNG and summary.md")


def _module(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(f"trainers.benchmarks.{name}")


def _start_ray() -> None:
    from scorer_service.ray.actor import NAMESPACE

    # Ray Train logs every report at INFO; the suites print their own progress.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    start_local_ray(NAMESPACE)


def run_suite(name: str, settings: Any, out: Path, progress: ProgressFn) -> dict[str, Any]:
    """One in-process suite with the given settings: its result with ``table`` and ``problems``."""
    mod = _module(name)
    t = time.perf_counter()
    result = mod.run(settings, out, progress)
    result["wall_s"] = time.perf_counter() - t
    result["table"] = mod.table(result)
    result["problems"] = mod.check(result)
    return result


def run_external(name: str, quick: bool, out: Path, progress: ProgressFn) -> dict[str, Any]:
    """``python -m trainers.benchmarks.NAME ARGS --json``; its output goes to NAME.log next to the JSON."""
    quick_args, full_args, timeout = EXTERNAL[name]
    args = quick_args if quick else full_args
    path = out / f"{name}.json"
    command = " ".join(["python -m", f"trainers.benchmarks.{name}", *args])
    log = out / f"{name}.log"
    progress(name, 0, 1, command)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        try:
            status: int | None = subprocess.run(
                [sys.executable, "-m", f"trainers.benchmarks.{name}", *args, "--json", str(path.resolve())],
                env=child_env(),
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            status = None
    result: dict[str, Any] = {"command": command, "wall_s": time.perf_counter() - t0, "log": log.name}
    progress(name, 1, 1, "done")
    if status is None:
        result["problems"] = [f"stopped as hung after {timeout:.0f} s; partial output in {log.name}"]
    elif status != 0:
        result["problems"] = [f"exited with status {status}; see {log.name}"]
    else:
        result["problems"] = []
        if path.exists():
            result["json"] = path.name
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainers.benchmarks", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        print(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2
    suites = [s for s in SUITES if s in args.suites] if args.suites else list(SUITES)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress()
    t0 = time.perf_counter()
    info = machine()
    print(f"# {describe(info)}")
    print(
        f"# python -m trainers.benchmarks {' '.join(suites)}{' --quick' if args.quick else ''} --out {out}",
        flush=True,
    )
    if info["gpu"] is not None:
        print("# the overhead suite runs on the CPU; python -m trainers.benchmarks.overhead --gpu: the GPU")

    results: dict[str, dict[str, Any]] = {}
    local = [s for s in suites if s in IN_PROCESS]
    if local:
        import ray

        _start_ray()
        try:
            for name in local:
                settings_cls = _module(name).Settings
                settings = settings_cls.quick() if args.quick else settings_cls.full()
                results[name] = run_suite(name, settings, out, progress)
                _finish(name, results[name], info, out, args.quick)
        finally:
            ray.shutdown()
    for name in (s for s in suites if s in EXTERNAL):
        results[name] = run_external(name, args.quick, out, progress)
        print(f"\n## {TITLES[name]}\n\n{_external_summary(name, results[name], out)}", flush=True)

    total = time.perf_counter() - t0
    info["load_avg_end"] = list(os.getloadavg())
    write_json(
        out / "run.json",
        {
            "machine": info,
            "quick": args.quick,
            "suites": suites,
            "wall_s": total,
            "suite_wall_s": {k: v["wall_s"] for k, v in results.items()},
            "problems": {k: v["problems"] for k, v in results.items() if v["problems"]},
        },
    )
    (out / "summary.md").write_text(_summary(results, info, suites, args.quick, out, total))
    problems = [f"{k}: {p}" for k, v in results.items() for p in v["problems"]]
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    print(f"\n# all suites: {total:.0f} s; results in {out}/ (summary.md, *.json, *.png)")
    return 1 if problems else 0


def _finish(name: str, result: dict[str, Any], info: dict[str, Any], out: Path, quick: bool) -> None:
    write_json(out / f"{name}.json", {"machine": info, "quick": quick, **result})
    print(f"\n## {TITLES[name]} ({result['wall_s']:.0f} s)\n\n{result['table']}", flush=True)
    if result.get("plot"):
        print(f"\nplot: {out / result['plot']}", flush=True)


def _external_summary(name: str, result: dict[str, Any], out: Path) -> str:
    lines = [f"`{result['command']}`: {result['wall_s']:.0f} s"]
    lines += [f"problem: {p}" for p in result["problems"]]
    if "json" not in result:
        return "\n\n".join(lines)
    data = json.loads((out / result["json"]).read_text())
    if name == "ingest":
        from trainers.benchmarks.ingest import InProcessRow, Row, format_in_process, format_table

        lines.append(format_in_process([InProcessRow(**r) for r in data.get("in_process", [])]))
        lines.append(format_table([Row(**r) for r in data["rows"]]))
    elif name == "soak":
        from trainers.benchmarks.soak_report import kind_table, table

        lines += [table(data["summary"]), kind_table(data["summary"])]
    else:
        # The selection suite prints its tables as aligned text; its log is the readable form.
        lines.append("```\n" + (out / result["log"]).read_text().strip() + "\n```")
    return "\n\n".join(lines)


def _summary(
    results: dict[str, dict[str, Any]],
    info: dict[str, Any],
    suites: list[str],
    quick: bool,
    out: Path,
    total: float,
) -> str:
    cmd = f"python -m trainers.benchmarks {' '.join(suites)}{' --quick' if quick else ''} --out {out}"
    parts = [
        "# Benchmark results",
        f"`{cmd}`: {total:.0f} s. Machine: {describe(info)} at the start, "
        f"{info['load_avg_end'][0]:.1f} at the end.",
    ]
    for name in suites:
        r = results[name]
        if name in EXTERNAL:
            parts.append(f"## {TITLES[name]}\n\n{_external_summary(name, r, out)}")
            continue
        body = r["table"]
        if r.get("plot"):
            body += f"\n\n![{name}]({r['plot']})"
        body += "".join(f"\n\nproblem: {p}" for p in r["problems"])
        parts.append(f"## {TITLES[name]} ({r['wall_s']:.0f} s)\n\n{body}")
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.exit(main())

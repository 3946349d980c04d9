"""Shared pieces of the benchmark suites: machine description, progress line, statistics, Markdown
tables, JSON output and matplotlib figures (Agg, so no display is needed)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The folder that holds the ``trainers`` package: a source checkout's root, or site-packages when installed.
PACKAGES = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """This environment with :data:`PACKAGES` first on ``PYTHONPATH``: a child interpreter started from any
    folder imports the same code as this one."""
    return os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGES), os.environ.get("PYTHONPATH")]))
    }


def start_local_ray(namespace: str, num_cpus: int | None = None) -> None:
    """A throwaway local Ray for one benchmark process: no dashboard, a bounded object store."""
    import ray

    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        namespace=namespace,
        log_to_driver=False,
        object_store_memory=512 << 20,
    )


def machine() -> dict[str, Any]:
    """What the numbers were measured on; the load average matters on a shared box."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = float("nan")
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for mod in ("ray", "fastapi", "uvicorn", "pyarrow"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "versions": versions,
        "load_avg": list(os.getloadavg()),
    }


def describe(m: dict[str, Any]) -> str:
    v = m["versions"]
    gpu = m["gpu"] or "no GPU"
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']:g} GiB RAM, {gpu}; Python {v['python']}, "
        f"torch {v['torch']}, Ray {v['ray']}; load average {m['load_avg'][0]:.1f}"
    )


class Progress:
    """One status line on stderr: rewritten in place on a terminal, one line per update in a log."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self._width = 0

    def __call__(self, suite: str, done: int, total: int, what: str = "") -> None:
        elapsed = time.perf_counter() - self.t0
        filled = int(20 * done / total) if total else 20
        line = f"[{suite:<9}] |{'#' * filled}{'.' * (20 - filled)}| {done}/{total} {what} ({elapsed:5.0f} s)"
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            if done >= total:
                self.stream.write("\n")
                self._width = 0
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


ProgressFn = Callable[[str, int, int, str], None]


def quiet_progress(suite: str, done: int, total: int, what: str = "") -> None:
    """For callers (tests) that want no progress output."""


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A GitHub Markdown table; ``align`` holds one of ``l``/``r`` per column (default: text left,
    numbers right)."""
    if not align:
        first = rows[0] if rows else ["" for _ in header]
        align = "".join("r" if isinstance(c, int | float) else "l" for c in first)
    cells = [[_cell(c) for c in r] for r in rows]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def _cell(c: Any) -> str:
    if isinstance(c, float):
        return "n/a" if math.isnan(c) else f"{c:,.3g}" if abs(c) < 1e3 else f"{c:,.0f}"
    if isinstance(c, int) and not isinstance(c, bool):
        return f"{c:,}"
    return str(c)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # Fixed metadata keeps a re-run's PNG byte-identical when the numbers are.
    fig.savefig(path, dpi=110, metadata={"Software": None})
    pyplot().close(fig)
    return path.name


def drop_store(run: str) -> None:
    """Kill a benchmark run's store actor (stores are detached and would otherwise outlive the run)."""
    from scorer_service.ray.actor import delete_store

    with contextlib.suppress(KeyError):
        delete_store(run)


def bench_config(
    run: str, spec: str, model: str, settings: Any, seed: int, storage: str, **options: Any
) -> Any:
    """A training run of a benchmark: ``settings``' schedule (epochs, warm start, cycle length), local mode
    (one process), snapshots and checkpoints under ``storage``, and the method's ``options``."""
    from trainers.train_config import TrainConfig

    return TrainConfig.create(
        run=run,
        dataset=spec,
        model=model,
        epochs=settings.epochs,
        warm_start=settings.warm_start,
        cycle_length=settings.cycle_length,
        seed=seed,
        workers=0,
        snapshot_dir=f"{storage}/snapshots",
        storage_path=f"{storage}/checkpoints",
        **options,
    )

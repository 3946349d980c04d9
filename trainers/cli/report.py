"""``curriculum report``: a PNG and a Markdown summary of a finished run, from the REST API.

Next to the run, its random control is drawn when one exists (``--control RUN``, or the run named
``<dataset>-random``): same schedule and budget, uniform selection, so the gap is what the
curriculum bought at equal compute.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from trainers.cli.scores import DEFAULT_API, api_client, get_json, run_path
from trainers.train_config import default_run_name


@dataclass
class RunData:
    run: str
    info: dict[str, Any]
    rounds: list[dict[str, Any]]

    @property
    def dataset(self) -> str:
        # Stores whose configuration lacks the dataset: the CLI names runs DATASET-METHOD.
        return (self.info.get("config") or {}).get("dataset") or self.run.split("-", 1)[0]

    def passes(self) -> np.ndarray:
        """Cumulative sample passes (forward+backward of one sample) after each round."""
        return np.cumsum([r["metrics"].get("samples", r["size"]) for r in self.rounds])

    def accuracy(self) -> list[tuple[float, float]]:
        """(cumulative passes, test accuracy) of the rounds that recorded one."""
        passes = self.passes()
        return [
            (float(p), float(r["metrics"]["test_accuracy"]))
            for p, r in zip(passes, self.rounds, strict=True)
            if "test_accuracy" in r["metrics"]
        ]


def fetch_run(client: httpx.Client, run: str) -> RunData:
    return RunData(run, get_json(client, run_path(run)), get_json(client, run_path(run, "rounds")))


def find_control(client: httpx.Client, data: RunData, control: str | None) -> RunData | None:
    """The named control, else ``<dataset>-random`` when such a run exists and is not the run itself."""
    if control is not None:
        return fetch_run(client, control)
    name = default_run_name(data.dataset, "random")
    if name == data.run or name not in {r["run"] for r in get_json(client, "/v1/runs")}:
        return None
    return fetch_run(client, name)


def _file_stem(run: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", run)


def _plot(data: RunData, control: RunData | None, path: Path) -> None:
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax_acc, ax_size, ax_dih = fig.subplots(1, 3)
    for run, style in ((data, "o-"), (control, "s--")):
        points = run.accuracy() if run is not None else []
        if run is not None and points:
            x, y = zip(*points, strict=True)
            ax_acc.plot(x, 100 * np.asarray(y), style, ms=3, label=f"{run.run} ({run.info.get('method')})")
    ax_acc.set(
        xlabel="cumulative sample passes", ylabel="test accuracy (%)", title="test accuracy vs compute"
    )
    ax_acc.grid(alpha=0.3)
    if ax_acc.has_data():
        ax_acc.legend(fontsize=8)

    rounds = [r["round"] for r in data.rounds]
    ax_size.bar(rounds, [r["size"] for r in data.rounds], color="#4c78a8", label=data.run)
    if control is not None:
        ax_size.step(
            [r["round"] for r in control.rounds],
            [r["size"] for r in control.rounds],
            where="mid",
            color="#f58518",
            label=control.run,
        )
        ax_size.legend(fontsize=8)
    ax_size.set(xlabel="round", ylabel="samples", title="subset size per round")

    # Each round's histogram keeps the bin edges it was recorded with, so each is its own column.
    hists = [(r["round"], r.get("dih_histogram") or {}) for r in data.rounds]
    hists = [(i, h) for i, h in hists if h.get("counts") and len(h.get("edges", ())) == len(h["counts"]) + 1]
    if hists:
        total = max(sum(h["counts"]) for _, h in hists)
        norm = LogNorm(vmin=1 / max(total, 2), vmax=1)
        for i, h in hists:
            frac = np.asarray(h["counts"], dtype=float) / max(sum(h["counts"]), 1)
            frac = np.ma.masked_less_equal(frac, 0)[:, None]
            mesh = ax_dih.pcolormesh([i - 0.45, i + 0.45], h["edges"], frac, norm=norm, cmap="viridis")
        fig.colorbar(mesh, ax=ax_dih, label="fraction of samples")
        lo, hi = min(h["edges"][0] for _, h in hists), max(h["edges"][-1] for _, h in hists)
        if lo > 0:
            ax_dih.set_yscale("log")
        ax_dih.set_ylim(lo, hi)
    ax_dih.set(xlabel="round", ylabel="DIH", title="DIH distribution at each selection")
    for ax in (ax_size, ax_dih):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(
        f"{data.run}: {data.info.get('method')}, metric {data.info.get('metric')}, n = {data.info.get('n')}"
    )
    fig.savefig(path, dpi=110)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _summary_line(run: RunData) -> str:
    acc = run.accuracy()
    passes = int(run.passes()[-1]) if run.rounds else 0
    n = run.info.get("n") or 1
    final = acc[-1][1] if acc else None
    best = max((a for _, a in acc), default=None)
    return (
        f"| `{run.run}` | {run.info.get('method')} | {len(run.rounds)} | {passes:,} | {passes / n:.1f} "
        f"| {_pct(final)} | {_pct(best)} |"
    )


def _markdown(data: RunData, control: RunData | None, png: Path) -> str:
    lines = [
        f"# Run `{data.run}`",
        "",
        f"Method `{data.info.get('method')}`, hardness metric `{data.info.get('metric')}`, "
        f"{data.info.get('n')} training samples, {data.info.get('rounds_completed')} of "
        f"{data.info.get('epochs')} rounds completed, {data.info.get('ingested', 0):,} samples ingested.",
        "",
        "| run | method | rounds | sample passes | epochs of full data | final test accuracy | best |",
        "|---|---|---:|---:|---:|---:|---:|",
        _summary_line(data),
    ]
    if control is not None:
        lines.append(_summary_line(control))
    else:
        lines += ["", f"No random control found (run `{data.dataset}-random`, or pass `--control`)."]
    lines += [
        "",
        f"![{data.run}]({png.name})",
        "",
        "| round | cycle | selector | subset | selection ms | train loss | test accuracy | sample passes |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r, passes in zip(data.rounds, data.passes(), strict=True):
        m = r["metrics"]
        loss = f"{m['train_loss']:.4f}" if "train_loss" in m else "-"
        lines.append(
            f"| {r['round']} | {r['cycle']} | {r['selector']} | {r['size']:,} | {r['selection_ms']:.2f} "
            f"| {loss} | {_pct(m.get('test_accuracy'))} | {int(passes):,} |"
        )
    return "\n".join(lines) + "\n"


def write_report(data: RunData, out_dir: Path, control: RunData | None = None) -> tuple[Path, Path]:
    """Write ``<run>.png`` and ``<run>.md`` into ``out_dir``; returns their paths."""
    if not data.rounds:
        raise ValueError(f"run {data.run!r} has no rounds yet")
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{_file_stem(data.run)}.png"
    md = out_dir / f"{_file_stem(data.run)}.md"
    _plot(data, control, png)
    md.write_text(_markdown(data, control, png))
    return png, md


def report(client: httpx.Client, run: str, out_dir: Path, control: str | None = None) -> tuple[Path, Path]:
    data = fetch_run(client, run)
    return write_report(data, out_dir, find_control(client, data, control))


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="PNG + Markdown summary of a run (from the REST API)")
    p.add_argument("run")
    p.add_argument("--out", type=Path, default=Path("reports"), help="output directory (default reports/)")
    p.add_argument("--control", default=None, help="control run (default: DATASET-random when it exists)")
    p.add_argument("--api", default=DEFAULT_API, help=f"REST API base URL (default {DEFAULT_API})")


def cmd_report(args: argparse.Namespace) -> int:
    with api_client(args.api) as client:
        try:
            png, md = report(client, args.run, args.out, args.control)
        except OSError as e:
            raise ValueError(f"cannot write the report into {args.out}: {e.strerror or e}") from None
    print(f"wrote {md} and {png}")
    return 0

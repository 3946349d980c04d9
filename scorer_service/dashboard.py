"""Server-rendered HTML dashboard: one page per run, inline SVG only (no scripts, no CDN).

Every plotted number is also in the markup (``data-*`` attributes, ``<title>`` tooltips), so the
page can be checked by reading its DOM. A run still in progress refreshes itself every few seconds.
"""

from __future__ import annotations

import asyncio
import functools
import html
import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from scorer_service.api import StoreDirectory, call_store

SAMPLES_SHOWN = 12
REFRESH_S = 5
# Round axes label every ``ceil(rounds / MAX_TICKS)``-th round so that labels never overlap.
MAX_TICKS = 10

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1b1f24;color:#fff;padding:12px 20px}header a{color:#9cc3ff}
main{padding:8px 20px 24px}h1{font-size:20px;margin:0}h2{font-size:16px;margin:18px 0 6px}
.status{display:inline-block;margin-left:10px;padding:1px 8px;border-radius:9px;font-size:12px;
background:#555}
.status.running{background:#b36b00}.status.finished{background:#2a7d3b}
dl{display:flex;flex-wrap:wrap;gap:4px 18px;margin:8px 0 0}dt{color:#9aa4b1}dd{margin:0 0 0 4px}
.row{display:flex;flex-wrap:wrap;gap:14px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:8px}
.card h3{font-size:13px;margin:0 0 4px;color:#444}
svg text{font:10px system-ui,sans-serif;fill:#57606a}
.bar{fill:#4c78a8}.bar:hover{fill:#f58518}.dih-bin:hover{stroke:#f58518}
.line{fill:none;stroke:#4c78a8;stroke-width:1.5}.point{fill:#4c78a8}.axis{stroke:#8c959f;stroke-width:1}
.samples{display:flex;flex-wrap:wrap;gap:6px;list-style:none;padding:0;margin:0}
.sample{background:#fff;border:1px solid #dde1e6;border-radius:4px;padding:4px;font-size:11px;
text-align:center;min-width:64px}.digit{display:block;margin:0 auto 2px;image-rendering:pixelated}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #dde1e6;padding:3px 8px;text-align:right}
th{background:#eef1f4}td:first-child,th:first-child{text-align:left}.note{color:#57606a;font-size:12px}
nav ul{margin:4px 0;padding-left:18px}
"""


def add_dashboard(app: FastAPI, directory: StoreDirectory) -> None:
    """Add ``GET /`` (the runs) and ``GET /runs/{run}`` (one run's page) to ``app``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        rows = []
        for run in await directory.runs():
            try:
                info = await call_store(directory, run, "info")
            except HTTPException:
                continue  # deleted or unreachable between listing and asking
            rows.append(info)
        return HTMLResponse(_page("curriculum runs", _header("curriculum runs") + _runs_table(rows)))

    @app.get("/runs/{run}", response_class=HTMLResponse, include_in_schema=False)
    async def run_page(run: str) -> HTMLResponse:
        try:
            body, running = await _run_body(directory, run)
        except HTTPException as e:
            msg = f'<main><p class="error" id="error">{_esc(e.detail)}</p><p><a href="/">all runs</a></p>'
            msg += "</main>"
            return HTMLResponse(_page(f"{run}: error", _header(run) + msg), status_code=e.status_code)
        return HTMLResponse(_page(f"{run}: curriculum", body, refresh=running))


async def _run_body(directory: StoreDirectory, run: str) -> tuple[str, bool]:
    info = await call_store(directory, run, "info")
    rounds = await call_store(directory, run, "round_summaries")
    hardest = await call_store(directory, run, "top", "dih", SAMPLES_SHOWN, "desc")
    easiest = await call_store(directory, run, "top", "dih", SAMPLES_SHOWN, "asc")
    now = await call_store(directory, run, "histogram", "dih", 20)
    rising, rising_note = await _rising(directory, run)
    images = await _images(info, run)
    runs = await directory.runs()

    running = info.get("rounds_completed", 0) < info.get("epochs", 0)
    status = "running" if running else "finished"
    head = _header(run, status, _info_list(info))
    numbers = [r["round"] for r in rounds]
    acc = [(r["round"], r["metrics"]["test_accuracy"]) for r in rounds if "test_accuracy" in r["metrics"]]
    loss = [(r["round"], r["metrics"]["train_loss"]) for r in rounds if "train_loss" in r["metrics"]]
    charts = [
        _card("subset size per round", _bar_chart("chart-size", numbers, [r["size"] for r in rounds], _int)),
        _card(
            "selection time per round (ms)",
            _bar_chart("chart-selection", numbers, [r["selection_ms"] for r in rounds], _ms),
        ),
        _card("test accuracy per round", _line_chart("chart-accuracy", numbers, acc, _pct, unit_range=True)),
        _card("train loss per round", _line_chart("chart-loss", numbers, loss, _g)),
    ]
    columns = [
        (f"round {r['round']} ({r['selector']})", r["round"], r.get("dih_histogram") or {}) for r in rounds
    ]
    dist = (
        '<section id="dih-distribution"><h2>DIH distribution at each selection, and now</h2>'
        f'<div class="card">{_dih_heatmap([*columns, ("now", None, now)])}</div></section>'
    )
    samples = (
        '<section id="samples">'
        f"<h2>Hardest samples now (largest DIH)</h2>{_samples('hardest', hardest, 'dih', images)}"
        f"<h2>Easiest samples now (smallest DIH)</h2>{_samples('easiest', easiest, 'dih', images)}"
        f'<h2>DIH rose fastest</h2><p class="note">{_esc(rising_note)}</p>'
        f"{_samples('rising', rising, 'value', images)}</section>"
    )
    body = (
        f'{head}<main><section id="rounds"><h2>Rounds</h2><div class="row">{"".join(charts)}</div></section>'
        f'{dist}{samples}<nav id="runs"><h2>All runs</h2>{_run_links(runs, run)}</nav></main>'
    )
    return body, running


async def _rising(directory: StoreDirectory, run: str) -> tuple[list[dict[str, Any]], str]:
    """The samples whose DIH rose most at their latest observation (DIH now minus DIH before it)."""
    dih = np.asarray(await call_store(directory, run, "column", "dih"), dtype=np.float64)
    prev = np.asarray(await call_store(directory, run, "column", "dih_prev"), dtype=np.float64)
    seen = np.asarray(await call_store(directory, run, "column", "seen"))
    candidates = np.flatnonzero(seen > 0)
    score = dih - prev
    note = "change of DIH at each sample's latest observation (DIH now minus DIH before it)"
    if candidates.size == 0:
        note = "no sample has been observed yet"
    candidates = candidates[np.isfinite(score[candidates])]
    pick = candidates[np.argsort(-score[candidates], kind="stable")[:SAMPLES_SHOWN]]
    return [{"id": int(i), "value": float(score[i]), "dih": float(dih[i])} for i in pick], note


def _dataset_spec(info: dict[str, Any], run: str) -> str:
    spec = (info.get("config") or {}).get("dataset")
    # Stores created before the configuration carried the dataset: the CLI names runs DATASET-METHOD.
    return spec or run.split("-", 1)[0]


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from trainers.datasets import load_dataset

    data = load_dataset("digits")
    return data.x_train.numpy(), data.y_train.numpy()


async def _images(info: dict[str, Any], run: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The training images and labels by sample id, for image datasets whose ids match the run's."""
    if _dataset_spec(info, run) != "digits":
        return None
    x, y = await asyncio.to_thread(_digits)
    return (x, y) if len(x) == info.get("n") else None


# ---- rendering ------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: float | int) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def _int(v: float) -> str:
    return f"{v:,.0f}"


def _ms(v: float) -> str:
    return f"{v:.3g} ms"


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _g(v: float) -> str:
    return f"{v:.4g}"


def _none() -> str:
    return '<p class="note">nothing yet</p>'


def _page(title: str, body: str, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>{meta}'
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _header(title: str, status: str | None = None, details: str = "") -> str:
    badge = f'<span class="status {status}" id="status">{status}</span>' if status else ""
    return f'<header><a href="/">runs</a><h1 id="run-name">{_esc(title)}{badge}</h1>{details}</header>'


def _info_list(info: dict[str, Any]) -> str:
    keys = ("method", "metric", "n", "epochs", "rounds", "rounds_completed", "steps", "ingested", "batches")
    items = "".join(
        f'<dt>{k.replace("_", " ")}</dt><dd data-key="{k}">{_esc(info[k])}</dd>' for k in keys if k in info
    )
    return f'<dl id="run-info">{items}</dl>'


def _runs_table(infos: list[dict[str, Any]]) -> str:
    if not infos:
        return f'<main><table id="runs"></table>{_none()}</main>'
    head = "<tr><th>run</th><th>method</th><th>n</th><th>rounds</th><th>ingested</th></tr>"
    rows = "".join(
        f'<tr class="run" data-run="{_esc(i["run"])}"><td><a href="/runs/{quote(str(i["run"]), safe="")}">'
        f"{_esc(i['run'])}</a></td><td>{_esc(i['method'])}</td><td>{i['n']}</td>"
        f"<td>{i['rounds_completed']}/{i['epochs']}</td><td>{i['ingested']:,}</td></tr>"
        for i in infos
    )
    return f'<main><table id="runs">{head}{rows}</table></main>'


def _run_links(runs: Sequence[str], current: str) -> str:
    items = "".join(
        f"<li>{_esc(r)}</li>"
        if r == current
        else f'<li><a href="/runs/{quote(r, safe="")}">{_esc(r)}</a></li>'
        for r in runs
    )
    return f"<ul>{items}</ul>"


def _card(title: str, svg: str) -> str:
    return f'<div class="card"><h3>{_esc(title)}</h3>{svg}</div>'


_W, _H, _ML, _MR, _MT, _MB = 320, 170, 50, 8, 10, 24


def _frame(chart_id: str, rounds: Sequence[int], top_label: str, bottom_label: str) -> list[str]:
    """SVG opening, axes, y labels and round ticks shared by the per-round charts."""
    step = (_W - _ML - _MR) / max(1, len(rounds))
    every = max(1, math.ceil(len(rounds) / MAX_TICKS))
    parts = [
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}">',
        f'<line class="axis" x1="{_ML}" y1="{_H - _MB}" x2="{_W - _MR}" y2="{_H - _MB}"/>',
        f'<line class="axis" x1="{_ML}" y1="{_MT}" x2="{_ML}" y2="{_H - _MB}"/>',
        f'<text x="{_ML - 4}" y="{_MT + 8}" text-anchor="end">{_esc(top_label)}</text>',
        f'<text x="{_ML - 4}" y="{_H - _MB}" text-anchor="end">{_esc(bottom_label)}</text>',
    ]
    parts += [
        f'<text x="{_ML + (i + 0.5) * step:.1f}" y="{_H - 8}" text-anchor="middle">{r}</text>'
        for i, r in enumerate(rounds)
        if i % every == 0
    ]
    return parts


def _bar_chart(
    chart_id: str, rounds: Sequence[int], values: Sequence[float], fmt: Callable[[float], str]
) -> str:
    if not rounds:
        return _none()
    top = max(max(values), 1e-12)
    parts = _frame(chart_id, rounds, fmt(top), fmt(0))
    step, ph = (_W - _ML - _MR) / len(rounds), _H - _MT - _MB
    for i, (r, v) in enumerate(zip(rounds, values, strict=True)):
        h = ph * max(v, 0) / top
        parts.append(
            f'<rect class="bar" data-round="{r}" data-value="{_num(v)}" x="{_ML + (i + 0.1) * step:.1f}" '
            f'y="{_H - _MB - h:.1f}" width="{0.8 * step:.1f}" height="{h:.1f}">'
            f"<title>round {r}: {_esc(fmt(v))}</title></rect>"
        )
    return "".join(parts) + "</svg>"


def _line_chart(
    chart_id: str,
    rounds: Sequence[int],
    points: Sequence[tuple[int, float]],
    fmt: Callable[[float], str],
    unit_range: bool = False,
) -> str:
    """Values at some of ``rounds`` (x aligned with the bar charts); ``unit_range`` caps the axis at 1."""
    if not points:
        return _none()
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    pad = max(0.05 * (hi - lo), 1e-3)
    # Non-negative quantities (losses, accuracies) never get a negative axis.
    lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad
    if unit_range:
        hi = min(hi, 1.0)
    parts = _frame(chart_id, rounds, fmt(hi), fmt(lo))
    step, ph = (_W - _ML - _MR) / len(rounds), _H - _MT - _MB
    index = {r: i for i, r in enumerate(rounds)}
    xy = [(_ML + (index[r] + 0.5) * step, _H - _MB - ph * (v - lo) / (hi - lo)) for r, v in points]
    parts.append(f'<polyline class="line" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in xy)}"/>')
    for (r, v), (x, y) in zip(points, xy, strict=True):
        parts.append(
            f'<circle class="point" data-round="{r}" data-value="{_num(v)}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
            f"<title>round {r}: {_esc(fmt(v))}</title></circle>"
        )
    x, y = xy[-1]
    parts.append(
        f'<text class="last-value" x="{x - 6:.1f}" y="{max(y - 6, _MT + 8):.1f}" text-anchor="end">'
        f"{_esc(fmt(values[-1]))}</text>"
    )
    return "".join(parts) + "</svg>"


# viridis at five stops: perceptually even, and readable in grayscale.
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _viridis(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    return "#" + "".join(f"{round(x + (y - x) * (t - i)):02x}" for x, y in zip(a, b, strict=True))


def _dih_heatmap(columns: Sequence[tuple[str, int | None, dict[str, Any]]]) -> str:
    """One column per round (and one for now): its DIH histogram as colored bins.

    Each round keeps the bin edges it was recorded with, so bins are placed by value on a shared
    DIH axis, logarithmic because DIH spans orders of magnitude as the learning rate decays.
    Color is the share of the round's samples in the bin, also on a log scale, so the sparse tail
    of hard samples stays visible next to the crowded easy end.
    """
    cols = [(lbl, r, h) for lbl, r, h in columns if h.get("counts") and len(h.get("edges", ())) > 1]
    if not cols:
        return _none()
    w, h, ml, mr, mt, mb = 960, 260, 56, 84, 10, 26
    pw, ph = w - ml - mr, h - mt - mb
    edges = [e for _, _, hist in cols for e in hist["edges"]]
    positive = [e for e in edges if e > 0]
    if positive:
        floor = min(positive) if min(edges) > 0 else min(positive) / 10
        y0, y1 = math.log10(floor), math.log10(max(edges))

        def scale(v: float) -> float:
            return math.log10(max(v, floor))
    else:
        y0, y1 = min(edges), max(edges)

        def scale(v: float) -> float:
            return v

    y1 = y1 if y1 > y0 else y0 + 1

    def y(v: float) -> float:
        return mt + ph * (1 - (scale(v) - y0) / (y1 - y0))

    largest = max(sum(hist["counts"]) for _, _, hist in cols)
    fmin = 1 / max(largest, 2)
    step = pw / len(cols)
    every = max(1, math.ceil(len(cols) / (2 * MAX_TICKS)))
    parts = [
        f'<svg id="dih-heatmap" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}">',
        f'<line class="axis" x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}"/>',
        f'<line class="axis" x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}"/>',
    ]
    if positive:
        ticks = [10.0**k for k in range(math.ceil(y0), math.floor(y1) + 1)]
        ticks = ticks[:: max(1, math.ceil(len(ticks) / 8))]
    else:
        ticks = [y0 + (y1 - y0) * i / 4 for i in range(5)]
    parts += [f'<text x="{ml - 4}" y="{y(t) + 3:.1f}" text-anchor="end">{t:.3g}</text>' for t in ticks]
    parts.append(
        f'<text x="12" y="{mt + ph / 2:.0f}" transform="rotate(-90 12 {mt + ph / 2:.0f})">DIH</text>'
    )
    for j, (label, round_, hist) in enumerate(cols):
        counts, e = hist["counts"], hist["edges"]
        total = sum(counts)
        x = ml + j * step
        cls, attr = ("dih-round", f' data-round="{round_}"') if round_ is not None else ("dih-now", "")
        parts.append(f'<g class="{cls}"{attr} data-total="{total}">')
        for i, c in enumerate(counts):
            if c == 0:
                continue
            top, bottom = y(e[i + 1]), y(e[i])
            t = 1 - math.log(c / total) / math.log(fmin)
            parts.append(
                f'<rect class="dih-bin" data-count="{c}" data-lo="{_num(e[i])}" data-hi="{_num(e[i + 1])}" '
                f'x="{x + 0.06 * step:.1f}" y="{top:.1f}" width="{0.88 * step:.1f}" '
                f'height="{max(bottom - top, 1.0):.1f}" fill="{_viridis(t)}"><title>{_esc(label)}: DIH in '
                f"[{e[i]:.4g}, {e[i + 1]:.4g}): {c} samples ({100 * c / total:.3g}%)</title></rect>"
            )
        parts.append("</g>")
        if j % every == 0 or round_ is None:
            text = label.split(" ")[1] if round_ is not None else label
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{h - 12}" text-anchor="middle">{_esc(text)}</text>'
            )
    parts.append(f'<text x="{ml + pw / 2:.0f}" y="{h - 1}" text-anchor="middle">round</text>')
    lx = w - mr + 24
    parts += [
        '<defs><linearGradient id="dih-scale" x1="0" y1="1" x2="0" y2="0">',
        *(f'<stop offset="{k / 4}" stop-color="{_viridis(k / 4)}"/>' for k in range(5)),
        "</linearGradient></defs>",
        f'<rect x="{lx}" y="{mt}" width="12" height="{ph}" fill="url(#dih-scale)"/>',
        f'<text x="{lx + 16}" y="{mt + 8}">100%</text>',
        f'<text x="{lx + 16}" y="{h - mb}">{100 * fmin:.2g}%</text>',
        f'<text x="{lx - 4}" y="{mt + ph / 2:.0f}" transform="rotate(-90 {lx - 4} {mt + ph / 2:.0f})" '
        'text-anchor="middle">share of samples</text>',
    ]
    return "".join(parts) + "</svg>"


def _digit_svg(pixels: np.ndarray) -> str:
    side = math.isqrt(pixels.size)
    # Only ink is drawn over a white square: most pixels of a digit are blank, and this halves the page.
    cells = "".join(
        f'<rect x="{i % side}" y="{i // side}" width="1" height="1" fill="#{g:02x}{g:02x}{g:02x}"/>'
        for i, g in ((i, round(255 * (1 - float(p)))) for i, p in enumerate(pixels))
        if g < 255
    )
    return (
        f'<svg class="digit" viewBox="0 0 {side} {side}" width="48" height="48" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>{cells}</svg>'
    )


def _samples(
    list_id: str, rows: list[dict[str, Any]], key: str, images: tuple[np.ndarray, np.ndarray] | None
) -> str:
    if not rows:
        return f'<ul class="samples" id="{list_id}"></ul>{_none()}'
    items = []
    for row in rows:
        i, v = row["id"], row[key]
        picture = label = ""
        if images is not None and 0 <= i < len(images[0]):
            picture = _digit_svg(images[0][i].reshape(-1))
            label = f" · label {int(images[1][i])}"
        dih = f" (DIH {row['dih']:.4g})" if key != "dih" else ""
        items.append(
            f'<li class="sample" data-id="{i}" data-value="{_num(v)}" title="sample {i}: {v:.6g}{dih}">'
            f"{picture}#{i}{label}<br>{v:.4g}</li>"
        )
    return f'<ul class="samples" id="{list_id}">{"".join(items)}</ul>'

"""Inline SVG charts and value formats for the dashboard (no scripts, no CDN)."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Round axes label every ``ceil(rounds / MAX_TICKS)``-th round so that labels never overlap.
MAX_TICKS = 10
# Chart width and height, and the margins left, right, top and bottom (SVG user units).
_W, _H, _ML, _MR, _MT, _MB = 320, 170, 50, 8, 10, 24


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(v: float | int) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def fmt_int(v: float) -> str:
    return f"{v:,.0f}"


def fmt_ms(v: float) -> str:
    return f"{v:.3g} ms"


def fmt_pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def fmt_g(v: float) -> str:
    return f"{v:.4g}"


def none_note() -> str:
    return '<p class="note">nothing yet</p>'


def _frame(chart_id: str, rounds: Sequence[int], top_label: str, bottom_label: str) -> list[str]:
    """SVG opening, axes, y labels and round ticks shared by the per-round charts."""
    step = (_W - _ML - _MR) / max(1, len(rounds))
    every = max(1, math.ceil(len(rounds) / MAX_TICKS))
    parts = [
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}">',
        f'<line class="axis" x1="{_ML}" y1="{_H - _MB}" x2="{_W - _MR}" y2="{_H - _MB}"/>',
        f'<line class="axis" x1="{_ML}" y1="{_MT}" x2="{_ML}" y2="{_H - _MB}"/>',
        f'<text x="{_ML - 4}" y="{_MT + 8}" text-anchor="end">{esc(top_label)}</text>',
        f'<text x="{_ML - 4}" y="{_H - _MB}" text-anchor="end">{esc(bottom_label)}</text>',
    ]
    parts += [
        f'<text x="{_ML + (i + 0.5) * step:.1f}" y="{_H - 8}" text-anchor="middle">{r}</text>'
        for i, r in enumerate(rounds)
        if i % every == 0
    ]
    return parts


def bar_chart(
    chart_id: str, rounds: Sequence[int], values: Sequence[float], fmt: Callable[[float], str]
) -> str:
    if not rounds:
        return none_note()
    top = max(max(values), 1e-12)
    parts = _frame(chart_id, rounds, fmt(top), fmt(0))
    step, ph = (_W - _ML - _MR) / len(rounds), _H - _MT - _MB
    for i, (r, v) in enumerate(zip(rounds, values, strict=True)):
        h = ph * max(v, 0) / top
        parts.append(
            f'<rect class="bar" data-round="{r}" data-value="{num(v)}" x="{_ML + (i + 0.1) * step:.1f}" '
            f'y="{_H - _MB - h:.1f}" width="{0.8 * step:.1f}" height="{h:.1f}">'
            f"<title>round {r}: {esc(fmt(v))}</title></rect>"
        )
    return "".join(parts) + "</svg>"


def line_chart(
    chart_id: str,
    rounds: Sequence[int],
    points: Sequence[tuple[int, float]],
    fmt: Callable[[float], str],
    unit_range: bool = False,
) -> str:
    """Values at some of ``rounds`` (x aligned with the bar charts); ``unit_range`` caps the axis at 1."""
    if not points:
        return none_note()
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
            f'<circle class="point" data-round="{r}" data-value="{num(v)}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
            f"<title>round {r}: {esc(fmt(v))}</title></circle>"
        )
    x, y = xy[-1]
    parts.append(
        f'<text class="last-value" x="{x - 6:.1f}" y="{max(y - 6, _MT + 8):.1f}" text-anchor="end">'
        f"{esc(fmt(values[-1]))}</text>"
    )
    return "".join(parts) + "</svg>"


# viridis at five stops: perceptually even, and readable in grayscale.
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _viridis(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    return "#" + "".join(f"{round(x + (y - x) * (t - i)):02x}" for x, y in zip(a, b, strict=True))


def dih_heatmap(columns: Sequence[tuple[str, int | None, dict[str, Any]]]) -> str:
    """One column per round (and one for now): its DIH histogram as colored bins.

    Each round keeps the bin edges it was recorded with, so bins are placed by value on a shared
    DIH axis, logarithmic because DIH spans orders of magnitude as the learning rate decays.
    Color is the share of the round's samples in the bin, also on a log scale, so the sparse tail
    of hard samples stays visible next to the crowded easy end.
    """
    cols = [(lbl, r, h) for lbl, r, h in columns if h.get("counts") and len(h.get("edges", ())) > 1]
    if not cols:
        return none_note()
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
                f'<rect class="dih-bin" data-count="{c}" data-lo="{num(e[i])}" data-hi="{num(e[i + 1])}" '
                f'x="{x + 0.06 * step:.1f}" y="{top:.1f}" width="{0.88 * step:.1f}" '
                f'height="{max(bottom - top, 1.0):.1f}" fill="{_viridis(t)}"><title>{esc(label)}: DIH in '
                f"[{e[i]:.4g}, {e[i + 1]:.4g}): {c} samples ({100 * c / total:.3g}%)</title></rect>"
            )
        parts.append("</g>")
        if j % every == 0 or round_ is None:
            text = label.split(" ")[1] if round_ is not None else label
            parts.append(f'<text x="{x + step / 2:.1f}" y="{h - 12}" text-anchor="middle">{esc(text)}</text>')
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


def digit_svg(pixels: np.ndarray) -> str:
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

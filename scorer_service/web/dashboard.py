"""Server-rendered HTML dashboard: one page per run, inline SVG only (no scripts, no CDN).

Every plotted number is also in the markup (``data-*`` attributes, ``<title>`` tooltips), so the
page can be checked by reading its DOM. A run still in progress refreshes itself every few seconds.
Once the service holds scoped tokens, a browser signs in with one (``/login``): it is kept in an
HttpOnly, SameSite=Strict cookie that only the pages read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs, quote

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from scorer_service.core.wire.interface import StoreInterface
from scorer_service.web.auth import COOKIE, Guards
from scorer_service.web.charts import (
    bar_chart,
    digit_svg,
    dih_heatmap,
    esc,
    fmt_g,
    fmt_int,
    fmt_ms,
    fmt_pct,
    line_chart,
    none_note,
    num,
)
from scorer_service.web.directory import CALL_TIMEOUT_S, StoreDirectory, call_store

# The training images and labels of a run by sample id, or None: ``images(dataset_spec, n)``.
# The process that builds the app passes one (``curriculum serve`` knows the built-in datasets);
# the web layer itself reads no training data.
ImageSource = Callable[[str, int], tuple[np.ndarray, np.ndarray] | None]

SAMPLES_SHOWN = 12
logger = logging.getLogger(__name__)
SIGN_OUT = '<form method="post" action="/logout" id="sign-out"><button>Sign out</button></form>'
REFRESH_S = 5

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


def add_dashboard(
    app: FastAPI, directory: StoreDirectory, guards: Guards, images: ImageSource | None = None
) -> None:
    """Add ``GET /`` (the runs the caller may read) and ``GET /runs/{run}`` (one run's page) to ``app``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False, dependencies=guards.pages("any"))
    async def index(request: Request) -> HTMLResponse:
        rows = []
        for run in guards.visible(request, await directory.runs()):
            try:
                info = await call_store(directory, run, StoreInterface.info)
            except HTTPException:
                continue  # deleted or unreachable between listing and asking
            rows.append(asdict(info))
        out = SIGN_OUT if request.cookies.get(COOKIE) else ""
        return HTMLResponse(_page("curriculum runs", _header("curriculum runs") + _runs_table(rows) + out))

    @app.get("/runs/{run}", response_class=HTMLResponse, include_in_schema=False, dependencies=guards.pages())
    async def run_page(request: Request, run: str) -> HTMLResponse:
        try:
            runs = guards.visible(request, await directory.runs())
            body, running = await _run_body(directory, run, images, runs)
        except HTTPException as e:
            msg = f'<main><p class="error" id="error">{esc(e.detail)}</p><p><a href="/">all runs</a></p>'
            msg += "</main>"
            return HTMLResponse(_page(f"{run}: error", _header(run) + msg), status_code=e.status_code)
        return HTMLResponse(_page(f"{run}: curriculum", body, refresh=running))

    add_sign_in(app, guards)


def add_sign_in(app: FastAPI, guards: Guards) -> None:
    """``GET/POST /login`` (a form that takes a token) and ``POST /logout`` for the pages."""

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(where: str = Query("/", alias="next", max_length=2000)) -> HTMLResponse:
        return HTMLResponse(_login_page(_local(where)))

    @app.post("/login", include_in_schema=False, response_model=None)
    async def login(request: Request) -> HTMLResponse | RedirectResponse:
        try:
            form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        except ValueError:  # more fields than the form has
            return HTMLResponse(_login_page("/", "the form has two fields: token and next"), status_code=400)
        token, where = form.get("token", [""])[0], _local(form.get("next", ["/"])[0])
        try:
            grant = await asyncio.wait_for(guards.grant_of(token), CALL_TIMEOUT_S) if token else None
        except Exception as e:
            logger.error("cannot read the token table", exc_info=e)
            raise HTTPException(503, "the service cannot check tokens now; try again") from None
        if grant is None:
            return HTMLResponse(_login_page(where, "unknown token"), status_code=401)
        done = RedirectResponse(where, status_code=303)
        secure = request.url.scheme == "https"
        done.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
        return done

    @app.post("/logout", include_in_schema=False)
    async def logout() -> RedirectResponse:
        done = RedirectResponse("/login", status_code=303)
        done.delete_cookie(COOKIE, path="/")
        return done


def _local(where: str) -> str:
    """``where`` if it is a path on this site, else ``/``: the form never sends a browser elsewhere."""
    return where if where.startswith("/") and not where.startswith(("//", "/\\")) else "/"


def _login_page(where: str, error: str = "") -> str:
    note = f'<p class="error" id="error">{esc(error)}</p>' if error else ""
    form = (
        f'<main>{note}<form method="post" action="/login"><p><label>API token '
        '<input type="password" name="token" autocomplete="current-password" required></label> '
        f'<input type="hidden" name="next" value="{esc(where)}"><button>Sign in</button></p></form>'
        '<p class="note">The token is kept in a cookie that only this dashboard\'s pages read '
        "(HttpOnly, SameSite=Strict).</p></main>"
    )
    return _page("sign in: curriculum", _header("sign in") + form)


async def _run_body(
    directory: StoreDirectory, run: str, source: ImageSource | None, runs: list[str]
) -> tuple[str, bool]:
    """One run's page; ``runs``: the runs the caller may read, linked at the top."""
    # The page renders the answers' fields by name.
    info = asdict(await call_store(directory, run, StoreInterface.info))
    rounds = [asdict(r) for r in await call_store(directory, run, StoreInterface.round_summaries)]
    hardest = [
        e.to_json() for e in await call_store(directory, run, StoreInterface.top, "dih", SAMPLES_SHOWN)
    ]
    easiest = [
        e.to_json() for e in await call_store(directory, run, StoreInterface.top, "dih", SAMPLES_SHOWN, "asc")
    ]
    now = asdict(await call_store(directory, run, StoreInterface.histogram, "dih", 20))
    rising, rising_note = await _rising(directory, run)
    issues = await call_store(directory, run, StoreInterface.label_issues, 0.5, SAMPLES_SHOWN)
    suspects = [asdict(r) for r in issues]
    images = None
    if source is not None:
        spec = (info.get("config") or {}).get("dataset") or ""
        images = await asyncio.to_thread(source, spec, int(info.get("n", 0)))

    status = info["state"]
    running = status == "running"
    head = _header(run, status, _info_list(info))
    numbers = [r["round"] for r in rounds]
    acc = [(r["round"], r["metrics"]["test_accuracy"]) for r in rounds if "test_accuracy" in r["metrics"]]
    loss = [(r["round"], r["metrics"]["train_loss"]) for r in rounds if "train_loss" in r["metrics"]]
    charts = [
        _card(
            "subset size per round", bar_chart("chart-size", numbers, [r["size"] for r in rounds], fmt_int)
        ),
        _card(
            "selection time per round (ms)",
            bar_chart("chart-selection", numbers, [r["selection_ms"] for r in rounds], fmt_ms),
        ),
        _card(
            "test accuracy per round", line_chart("chart-accuracy", numbers, acc, fmt_pct, unit_range=True)
        ),
        _card("train loss per round", line_chart("chart-loss", numbers, loss, fmt_g)),
    ]
    columns = [
        (f"round {r['round']} ({r['selector']})", r["round"], r.get("dih_histogram") or {}) for r in rounds
    ]
    dist = (
        '<section id="dih-distribution"><h2>DIH distribution at each selection, and now</h2>'
        f'<div class="card">{dih_heatmap([*columns, ("now", None, now)])}</div></section>'
    )
    samples = (
        '<section id="samples">'
        f"<h2>Hardest samples now (largest DIH)</h2>{_samples('hardest', hardest, 'dih', images)}"
        f"<h2>Easiest samples now (smallest DIH)</h2>{_samples('easiest', easiest, 'dih', images)}"
        f'<h2>DIH rose fastest</h2><p class="note">{esc(rising_note)}</p>'
        f"{_samples('rising', rising, 'value', images)}"
        "<h2>Likely mislabeled (noise probability, from each sample's mean loss)</h2>"
        f"{_samples('label-issues', suspects, 'noise', images)}</section>"
    )
    body = (
        f'{head}<main><section id="rounds"><h2>Rounds</h2><div class="row">{"".join(charts)}</div>'
        f"{_selection_table(rounds)}</section>"
        f'{dist}{samples}<nav id="runs"><h2>All runs</h2>{_run_links(runs, run)}</nav></main>'
    )
    return body, running


def _selection_table(rounds: Sequence[dict[str, Any]]) -> str:
    """How each round was selected: the diversity step's partitioning and objective against a global
    solve, and the share of samples left out as likely mislabeled."""
    rows = []
    for r in rounds:
        d = r.get("details") or {}
        if not d:
            continue
        rel = d.get("diversity_relative_objective")
        objective = (
            ""
            if rel is None
            else f"{100 * rel:.2f} %" + (" (est.)" if d.get("diversity_relative_objective_estimated") else "")
        )
        where = d.get("diversity_partitioning", "")
        if d.get("diversity_blocks", 1) > 1:
            where += f", {d['diversity_blocks']} blocks" + (", merged" if d.get("diversity_merged") else "")
        if d.get("diversity_optimizer"):
            where += f", {d['diversity_optimizer']} greedy"
        excluded = d.get("noise_excluded_share")
        cells = (
            r["round"],
            esc(r["selector"]),
            esc(where),
            objective,
            "" if excluded is None else fmt_pct(excluded),
        )
        rows.append(f'<tr data-round="{r["round"]}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not rows:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("round", "selector", "diversity blocks", "objective vs global", "left out as mislabeled")
    )
    head = f"<tr>{head}</tr>"
    return f'<h3>Selections</h3><table id="selections">{head}{"".join(rows)}</table>'


async def _rising(directory: StoreDirectory, run: str) -> tuple[list[dict[str, Any]], str]:
    """The samples whose DIH rose most at their latest observation (DIH now minus DIH before it)."""
    top = await call_store(directory, run, StoreInterface.top, "dih_rise", SAMPLES_SHOWN, "desc")
    if not top:
        return [], "no sample has been observed yet"
    rows = await call_store(directory, run, StoreInterface.samples, [t.id for t in top])
    note = "change of DIH at each sample's latest observation (DIH now minus DIH before it)"
    return [{"id": t.id, "value": t.value, "dih": r.dih} for t, r in zip(top, rows, strict=True)], note


# ---- rendering ------------------------------------------------------------------------------


def _page(title: str, body: str, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>{meta}'
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _header(title: str, status: str | None = None, details: str = "") -> str:
    badge = f'<span class="status {status}" id="status">{status}</span>' if status else ""
    return f'<header><a href="/">runs</a><h1 id="run-name">{esc(title)}{badge}</h1>{details}</header>'


def _info_list(info: dict[str, Any]) -> str:
    keys = ("method", "metric", "n", "epochs", "rounds", "rounds_completed", "steps", "ingested", "batches")
    items = "".join(
        f'<dt>{k.replace("_", " ")}</dt><dd data-key="{k}">{esc(info[k])}</dd>' for k in keys if k in info
    )
    return f'<dl id="run-info">{items}</dl>'


def _runs_table(infos: list[dict[str, Any]]) -> str:
    if not infos:
        return f'<main><table id="runs"></table>{none_note()}</main>'
    head = "<tr><th>run</th><th>method</th><th>n</th><th>rounds</th><th>ingested</th></tr>"
    rows = "".join(
        f'<tr class="run" data-run="{esc(i["run"])}"><td><a href="/runs/{quote(str(i["run"]), safe="")}">'
        f"{esc(i['run'])}</a></td><td>{esc(i['method'])}</td><td>{i['n']}</td>"
        f"<td>{i['rounds_completed']}/{i['epochs']}</td><td>{i['ingested']:,}</td></tr>"
        for i in infos
    )
    return f'<main><table id="runs">{head}{rows}</table></main>'


def _run_links(runs: Sequence[str], current: str) -> str:
    items = "".join(
        f"<li>{esc(r)}</li>" if r == current else f'<li><a href="/runs/{quote(r, safe="")}">{esc(r)}</a></li>'
        for r in runs
    )
    return f"<ul>{items}</ul>"


def _card(title: str, svg: str) -> str:
    return f'<div class="card"><h3>{esc(title)}</h3>{svg}</div>'


def _samples(
    list_id: str, rows: list[dict[str, Any]], key: str, images: tuple[np.ndarray, np.ndarray] | None
) -> str:
    if not rows:
        return f'<ul class="samples" id="{list_id}"></ul>{none_note()}'
    items = []
    for row in rows:
        i, v = row["id"], row[key]
        picture = label = ""
        if images is not None and 0 <= i < len(images[0]):
            picture = digit_svg(images[0][i].reshape(-1))
            label = f" · label {int(images[1][i])}"
        dih = f" (DIH {row['dih']:.4g})" if key != "dih" and "dih" in row else ""
        if row.get("predicted", -1) >= 0:
            dih += f" (predicted {row['predicted']})"
        items.append(
            f'<li class="sample" data-id="{i}" data-value="{num(v)}" title="sample {i}: {v:.6g}{dih}">'
            f"{picture}#{i}{label}<br>{v:.4g}</li>"
        )
    return f'<ul class="samples" id="{list_id}">{"".join(items)}</ul>'

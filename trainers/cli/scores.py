"""``curriculum scores`` and ``curriculum export``: score queries over the REST API.

They talk HTTP, not Ray, so they work from any machine that can reach the API. The server half of
``export`` is ``scorer_service.web.export``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from scorer_service.core.table import EXPORT_FORMATS

DEFAULT_API = "http://127.0.0.1:8000"
# Columns shown next to the ranked metric by ``scores --top``.
CONTEXT_COLUMNS = ("seen", "last_loss", "flips", "last_seen_round")
MAX_IDS_PER_REQUEST = 1000
CHUNK = 1 << 20


class ApiError(ValueError):
    """The API answered with an error or could not be reached; the message is for the user."""


def api_client(api: str) -> httpx.Client:
    return httpx.Client(base_url=api.rstrip("/"), timeout=60)


def get_json(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    try:
        r = client.get(path, params=params)
    except httpx.TransportError as e:
        raise ApiError(f"cannot reach the API at {client.base_url}: {e}") from None
    if r.status_code != 200:
        raise ApiError(f"{r.status_code} from {path}: {_detail(r)}")
    return r.json()


def run_path(run: str, *rest: str) -> str:
    return "/".join(["/v1/runs", quote(run, safe=""), *rest])


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", r.text))
    except ValueError:
        return r.text.strip() or r.reason_phrase


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[j], int | float) or row[j] is None for row in rows) for j in range(len(headers))
    ]
    widths = [max([len(h), *(len(c[j]) for c in cells)]) for j, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def top_table(client: httpx.Client, run: str, metric: str, k: int, order: str) -> str:
    """The ``k`` hardest (``desc``) or easiest (``asc``) samples by ``metric``, with context columns."""
    top = get_json(client, run_path(run, "top"), {"metric": metric, "k": k, "order": order})
    ids = [t["id"] for t in top]
    rows: dict[int, dict[str, Any]] = {}
    for i in range(0, len(ids), MAX_IDS_PER_REQUEST):
        chunk = ",".join(map(str, ids[i : i + MAX_IDS_PER_REQUEST]))
        rows.update({s["id"]: s for s in get_json(client, run_path(run, "samples"), {"ids": chunk})})
    extra = [c for c in CONTEXT_COLUMNS if c != metric]
    table = [
        [rank, t["id"], t[metric], *(rows[t["id"]].get(c) for c in extra)] for rank, t in enumerate(top, 1)
    ]
    return format_table(["rank", "id", metric, *extra], table)


def sample_table(client: httpx.Client, run: str, sample_id: int) -> str:
    """Every score column of one sample, one per line."""
    sample = get_json(client, run_path(run, "samples", str(sample_id)))
    return format_table(["column", "value"], [[k, v] for k, v in sample.items()])


def export(client: httpx.Client, run: str, path: Path, fmt: str | None = None) -> tuple[int, int]:
    """Download the run's score table to ``path``; returns (rows, bytes).

    The format comes from ``fmt`` or the file suffix. The download goes to a side file first, so a
    failed transfer never leaves a truncated table under the requested name.
    """
    fmt = fmt or {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path}: use a .parquet or .csv name, or --format")
    partial = path.with_name(path.name + ".part")
    size = 0
    try:
        with client.stream("GET", run_path(run, "export"), params={"format": fmt}) as r:
            if r.status_code != 200:
                r.read()
                raise ApiError(f"{r.status_code} from {run_path(run, 'export')}: {_detail(r)}")
            rows = int(r.headers.get("x-row-count", -1))
            with open(partial, "wb") as f:
                for chunk in r.iter_bytes(CHUNK):
                    f.write(chunk)
                    size += len(chunk)
        os.replace(partial, path)
    except httpx.TransportError as e:
        raise ApiError(f"cannot reach the API at {client.base_url}: {e}") from None
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        partial.unlink(missing_ok=True)
    return rows, size


def label_issue_table(client: httpx.Client, run: str, threshold: float, limit: int) -> str:
    """The run's likely mislabeled samples, most likely first."""
    issues = get_json(client, run_path(run, "label-issues"), {"threshold": threshold, "limit": limit})
    cols = ("noise", "label", "predicted", "loss_mean", "seen")
    return format_table(
        ["rank", "id", *cols], [[r, i["id"], *(i[c] for c in cols)] for r, i in enumerate(issues, 1)]
    )


# ---- command line ---------------------------------------------------------------------------


def add_query_parsers(sub: argparse._SubParsersAction) -> None:
    """``scores``, ``label-issues`` and ``export`` subcommands."""
    p = sub.add_parser("scores", help="per-sample scores of a run (hardest, easiest, or one sample)")
    p.add_argument("run")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--top", type=int, default=20, metavar="K", help="the K top samples (default 20)")
    which.add_argument("--id", type=int, default=None, help="every score column of one sample")
    p.add_argument("--metric", default="dih", help="metric to rank by (default dih)")
    p.add_argument("--order", choices=("desc", "asc"), default="desc", help="desc: hardest first")
    p.add_argument("--api", default=DEFAULT_API, help=f"REST API base URL (default {DEFAULT_API})")

    p = sub.add_parser("label-issues", help="the run's likely mislabeled samples, most likely first")
    p.add_argument("run")
    p.add_argument(
        "--threshold", type=float, default=0.5, help="noise probability above which a label is suspect"
    )
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--api", default=DEFAULT_API, help=f"REST API base URL (default {DEFAULT_API})")

    p = sub.add_parser("export", help="download a run's whole score table as Parquet or CSV")
    p.add_argument("run")
    p.add_argument("path", type=Path, help="output file (.parquet or .csv)")
    p.add_argument("--format", choices=sorted(EXPORT_FORMATS), default=None, help="default: from the suffix")
    p.add_argument("--api", default=DEFAULT_API, help=f"REST API base URL (default {DEFAULT_API})")


def cmd_scores(args: argparse.Namespace) -> int:
    with api_client(args.api) as client:
        if args.id is not None:
            print(sample_table(client, args.run, args.id))
        else:
            print(top_table(client, args.run, args.metric, args.top, args.order))
    return 0


def cmd_label_issues(args: argparse.Namespace) -> int:
    with api_client(args.api) as client:
        print(label_issue_table(client, args.run, args.threshold, args.limit))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with api_client(args.api) as client:
        rows, size = export(client, args.run, args.path, args.format)
    print(f"wrote {args.path}: {rows} rows, {size:,} bytes")
    return 0

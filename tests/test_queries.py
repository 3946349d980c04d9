"""``curriculum scores``, ``export`` and ``report`` against a live API (uvicorn) over in-process stores."""

from __future__ import annotations

import argparse
import io
import re
import socket

import httpx
import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from scorer_service.config import StoreConfig
from scorer_service.core.state import COLUMNS
from scorer_service.store import HardnessStore
from scorer_service.web.app import build_app
from scorer_service.web.directory import LocalDirectory
from tests.helpers import batch, uvicorn_server
from trainers.cli.report import add_report_parser, cmd_report
from trainers.cli.scores import ApiError, add_query_parsers, cmd_export, cmd_scores, format_table

RUN, CONTROL = "synthetic-dihcl-greedy", "synthetic-random"
N = 40
ACCURACIES = {RUN: [0.25, 0.5, 0.625, 0.75], CONTROL: [0.25, 0.375, 0.5, 0.5625]}


def finished_store(run: str, method: str) -> HardnessStore:
    """Round 0 sees every sample once with loss i / N; later rounds see their subsets with smaller losses."""
    store = HardnessStore(
        StoreConfig.create(n=N, epochs=4, run=run, method=method, warm_start=1, cycle_length=1)
    )
    for r, acc in enumerate(ACCURACIES[run]):
        store.subset(r, 0, 1)
        ids = np.asarray(store.round_subset(r, 0, N).ids)
        loss = ids / N * 0.5**r
        store.ingest(batch(ids, loss, loss < 0.3, step=r, lr=1.0, round_=r, seq=r))
        store.record_round(r, {"test_accuracy": acc, "train_loss": float(loss.mean()), "samples": len(ids)})
    return store


@pytest.fixture(scope="module")
def api():
    stores = {RUN: finished_store(RUN, "dihcl-greedy"), CONTROL: finished_store(CONTROL, "random")}
    directory = LocalDirectory(stores)
    app = build_app(directory)
    with uvicorn_server(app) as url:
        yield url, stores


def cli(*argv: str) -> int:
    """The subcommands as ``curriculum`` wires them."""
    parser = argparse.ArgumentParser(prog="curriculum")
    sub = parser.add_subparsers(dest="command", required=True)
    add_query_parsers(sub)
    add_report_parser(sub)
    args = parser.parse_args(argv)
    return {"scores": cmd_scores, "export": cmd_export, "report": cmd_report}[args.command](args)


def table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.strip().splitlines()
    assert set(lines[1].replace(" ", "")) == {"-"}
    return lines[0].split(), [line.split() for line in lines[2:]]


def test_top_prints_the_hardest_samples(api, capsys):
    url, stores = api
    assert cli("scores", RUN, "--top", "3", "--api", url) == 0
    header, rows = table(capsys.readouterr().out)
    assert header == ["rank", "id", "dih", "seen", "last_loss", "flips", "last_seen_round"]
    expected = stores[RUN].top("dih", 3, "desc")
    assert [int(r[1]) for r in rows] == [e.id for e in expected] == [39, 38, 37]
    assert [r[2] for r in rows] == [f"{e.value:.6g}" for e in expected]
    assert [r[3] for r in rows] == ["4"] * 3 and [r[0] for r in rows] == ["1", "2", "3"]


def test_top_ascending_by_another_metric(api, capsys):
    url, stores = api
    cli("scores", RUN, "--top", "2", "--metric", "last_loss", "--order", "asc", "--api", url)
    header, rows = table(capsys.readouterr().out)
    assert header[2] == "last_loss" and "last_loss" not in header[3:]
    assert [int(r[1]) for r in rows] == [e.id for e in stores[RUN].top("last_loss", 2, "asc")]


def test_one_sample(api, capsys):
    url, _ = api
    cli("scores", RUN, "--id", "0", "--api", url)
    _, rows = table(capsys.readouterr().out)
    values = dict(rows)
    # Greedy never selects the easiest sample again: it keeps its one observation, loss 0.
    assert values["id"] == "0" and values["seen"] == "1" and values["last_loss"] == "0"
    assert values["dih"] == f"{0.05:.6g}" and values["last_seen_round"] == "0"


@pytest.mark.parametrize(
    "argv, message",
    [
        (("scores", "nope"), "404 from /v1/runs/nope/top: no store for run 'nope'"),
        (
            ("scores", RUN, "--metric", "shoe"),
            f"422 from /v1/runs/{RUN}/top: query parameter metric: Input should be 'dih', 'last_loss'",
        ),
        (
            ("scores", RUN, "--top", "0"),
            f"422 from /v1/runs/{RUN}/top: query parameter k: Input should be greater than or equal to 1",
        ),
        (("scores", RUN, "--id", str(N)), f"404 from /v1/runs/{RUN}/samples/{N}: sample {N} does not exist"),
        (("export", "nope", "x.parquet"), "404 from /v1/runs/nope/export: no store for run 'nope'"),
        (("export", RUN, "x.xlsx"), "cannot tell the format of x.xlsx"),
    ],
)
def test_errors_are_messages(api, tmp_path, monkeypatch, argv, message):
    url, _ = api
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        cli(*argv, "--api", url)
    assert not list(tmp_path.iterdir())


def test_unreachable_api():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ApiError, match="cannot reach the API at http://127.0.0.1"):
        cli("scores", RUN, "--api", f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_round_trips_every_column(api, tmp_path, capsys, fmt):
    url, stores = api
    path = tmp_path / f"scores.{fmt}"
    assert cli("export", RUN, str(path), "--api", url) == 0
    assert capsys.readouterr().out.startswith(f"wrote {path}: {N} rows, ")
    read = pq.read_table(path) if fmt == "parquet" else pacsv.read_csv(path)
    assert read.column_names == ["id", *COLUMNS]
    assert read.column("id").to_pylist() == list(range(N))
    for name in COLUMNS:
        np.testing.assert_allclose(read.column(name).to_numpy(), stores[RUN].column(name), rtol=1e-6)


def test_export_endpoint_media_types_and_bad_format(api):
    url, _ = api
    parquet = httpx.get(f"{url}/v1/runs/{RUN}/export")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == N
    csv = httpx.get(f"{url}/v1/runs/{RUN}/export", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.startswith('"id","dih"')
    bad = httpx.get(f"{url}/v1/runs/{RUN}/export", params={"format": "xlsx"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith(
        "query parameter format: Input should be"
    )


def test_format_table_aligns_numbers_right():
    assert format_table(["name", "v"], [["a", 1.5], ["bbb", None], ["c", 10]]).splitlines() == [
        "name    v",
        "----  ---",
        "a     1.5",
        "bbb     -",
        "c      10",
    ]


def test_report_with_its_random_control(api, tmp_path, capsys):
    url, stores = api
    assert cli("report", RUN, "--out", str(tmp_path), "--api", url) == 0
    png, md = tmp_path / f"{RUN}.png", tmp_path / f"{RUN}.md"
    assert capsys.readouterr().out.strip() == f"wrote {md} and {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = md.read_text()
    sizes = [r.size for r in stores[RUN].round_summaries()]
    passes = sum(sizes)
    assert f"| `{RUN}` | dihcl-greedy | 4 | {passes} | {passes / N:.1f} | 75.00% | 75.00% |" in text
    assert f"| `{CONTROL}` | random | 4 |" in text and "| 56.25% | 56.25% |" in text
    rows = [
        line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    assert [int(r.split("|")[1]) for r in rows] == [0, 1, 2, 3]
    assert rows[-1].split("|")[4].strip() == str(sizes[-1]) and "| 75.00% |" in rows[-1]
    assert f"![{RUN}]({RUN}.png)" in text


def test_report_without_control(api, tmp_path):
    url, _ = api
    cli("report", CONTROL, "--out", str(tmp_path), "--api", url)
    assert "No random control found" in (tmp_path / f"{CONTROL}.md").read_text()

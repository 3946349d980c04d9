"""The dashboard of a small finished run, rendered by headless Chromium, shows the run's real numbers."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import numpy as np
import pytest

from scorer_service.config import StoreConfig
from scorer_service.store import HardnessStore
from scorer_service.web.app import build_app
from scorer_service.web.dashboard import SAMPLES_SHOWN
from scorer_service.web.directory import LocalDirectory
from tests.helpers import batch, uvicorn_server
from trainers.images import training_images

RUN = "digits-dihcl-greedy"
N = 1437  # the digits training split, so the page draws the real images
ACCURACIES = [0.5, 0.625, 0.75, 0.8125]
CHROMIUM = next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (apt-get install -y --no-install-recommends chromium)"
)


def finished_store() -> HardnessStore:
    """Four rounds (one warm start, three greedy selections), every round's subset ingested."""
    store = HardnessStore(
        StoreConfig.create(
            n=N, epochs=4, run=RUN, dataset="digits", method="dihcl-greedy", warm_start=1, cycle_length=1
        )
    )
    rng = np.random.default_rng(0)
    for r, acc in enumerate(ACCURACIES):
        store.subset(r, 0, 1)
        ids = np.asarray(store.round_subset(r, 0, N).ids)
        loss = rng.gamma(2.0, 0.5 / (r + 1), size=ids.size)
        store.ingest(batch(ids, loss, loss < 0.5, step=r, lr=0.1, round_=r, seq=r))
        store.record_round(r, {"test_accuracy": acc, "train_loss": float(loss.mean()), "step": r + 1})
    return store


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []
        self.text = ""

    def find(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        out = []
        for c in self.children:
            if (tag is None or c.tag == tag) and (cls is None or cls in c.attrs.get("class", "").split()):
                out.append(c)
            out += c.find(tag, cls)
        return out

    def by_id(self, id_: str) -> Node:
        hits = [n for n in self.find() if n.attrs.get("id") == id_]
        assert len(hits) == 1, f"expected one element #{id_}, found {len(hits)}"
        return hits[0]


class DomParser(HTMLParser):
    VOID = {"meta", "br", "link", "img", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.root = self.node = Node("#root", {}, None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.node)
        self.node.children.append(node)
        if tag not in self.VOID:
            self.node = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.node.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.node))

    def handle_endtag(self, tag: str) -> None:
        node = self.node
        while node.parent is not None and node.tag != tag:
            node = node.parent
        if node.parent is not None:
            self.node = node.parent

    def handle_data(self, data: str) -> None:
        self.node.text += data


def chromium(*args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def server():
    store = finished_store()
    app = build_app(LocalDirectory({RUN: store}), images=training_images)
    with uvicorn_server(app) as url:
        yield url, store


@pytest.fixture(scope="module")
def dom(server):
    url, _ = server
    return parse(chromium("--dump-dom", f"{url}/runs/{RUN}").stdout)


def parse(html: str) -> Node:
    parser = DomParser()
    parser.feed(html)
    return parser.root


async def get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(path)


def values(nodes: list[Node]) -> list[float]:
    return [float(n.attrs["data-value"]) for n in nodes]


@needs_chromium
def test_round_charts_carry_the_runs_numbers(dom, server):
    _, store = server
    rounds = store.round_summaries()
    sizes = dom.by_id("chart-size").find("rect", "bar")
    assert [int(b.attrs["data-round"]) for b in sizes] == [0, 1, 2, 3]
    assert values(sizes) == [r.size for r in rounds] and values(sizes)[0] == N
    assert values(dom.by_id("chart-selection").find("rect", "bar")) == [r.selection_ms for r in rounds]
    points = dom.by_id("chart-accuracy").find("circle", "point")
    assert values(points) == ACCURACIES
    assert dom.by_id("chart-accuracy").find("text", "last-value")[0].text == "81.25%"
    assert "round 3: 81.25%" in points[-1].find("title")[0].text


@needs_chromium
def test_dih_histogram_per_round(dom, server):
    _, store = server
    heatmap = dom.by_id("dih-heatmap")
    columns = heatmap.find("g", "dih-round")
    assert [int(c.attrs["data-round"]) for c in columns] == [0, 1, 2, 3]
    for column, summary in zip(columns, store.round_summaries(), strict=True):
        hist = summary.dih_histogram
        drawn = [
            (float(b.attrs["data-lo"]), int(b.attrs["data-count"])) for b in column.find("rect", "dih-bin")
        ]
        assert drawn == [(lo, c) for lo, c in zip(hist["edges"], hist["counts"], strict=False) if c]
        assert int(column.attrs["data-total"]) == N
    now = heatmap.find("g", "dih-now")
    assert len(now) == 1 and sum(int(b.attrs["data-count"]) for b in now[0].find("rect", "dih-bin")) == N


@needs_chromium
def test_hardest_easiest_and_rising_samples_with_images(dom, server):
    _, store = server
    for list_id, order in (("hardest", "desc"), ("easiest", "asc")):
        items = dom.by_id(list_id).find("li", "sample")
        expected = store.top("dih", SAMPLES_SHOWN, order)
        assert [int(i.attrs["data-id"]) for i in items] == [e.id for e in expected]
        assert values(items) == [e.value for e in expected]
        assert len(dom.by_id(list_id).find("svg", "digit")) == SAMPLES_SHOWN
    rising = dom.by_id("rising").find("li", "sample")
    assert len(rising) == SAMPLES_SHOWN and len(dom.by_id("rising").find("svg", "digit")) == SAMPLES_SHOWN
    rise = np.where(store.column("seen") > 0, store.column("dih") - store.column("dih_prev"), -np.inf)
    expected_rising = np.argsort(-rise, kind="stable")[:SAMPLES_SHOWN]
    assert [int(i.attrs["data-id"]) for i in rising] == expected_rising.tolist()
    assert dom.by_id("status").text == "finished"
    assert dom.by_id("runs").find("li")[0].text == RUN


def test_index_and_unknown_run(server):
    url, _ = server
    index = httpx.get(f"{url}/")
    assert index.status_code == 200 and f'href="/runs/{RUN}"' in index.text
    missing = httpx.get(f"{url}/runs/nope")
    assert missing.status_code == 404 and "no store for run &#x27;nope&#x27;" in missing.text
    assert missing.headers["content-type"].startswith("text/html")


@needs_chromium
def test_screenshot(server, tmp_path):
    url, _ = server
    out = Path(os.environ.get("CURRICULUM_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "dashboard.png"
    chromium(f"--screenshot={png}", "--window-size=1440,1500", f"{url}/runs/{RUN}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    if os.environ.get("CURRICULUM_WRITE_DOCS") == "1":
        docs = Path(__file__).resolve().parents[1] / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(png, docs / "dashboard.png")


def test_rising_ranks_by_the_change_of_dih():
    store = HardnessStore(
        StoreConfig.create(n=30, epochs=3, run="synthetic-x", method="dihcl-greedy", warm_start=1)
    )
    store.subset(0, 0, 1)
    store.ingest(batch(range(30), np.linspace(0, 1, 30), [True] * 30, step=0, lr=1.0))
    rise = np.zeros(30)
    rise[[4, 17, 9]] = [0.5, 0.3, 0.1]
    store.state.dih_prev[:] = store.column("dih") - rise
    app = build_app(LocalDirectory({"synthetic-x": store}), images=training_images)
    page = asyncio.run(get(app, "/runs/synthetic-x"))
    assert page.status_code == 200
    items = parse(page.text).by_id("rising").find("li", "sample")
    assert [int(i.attrs["data-id"]) for i in items[:3]] == [4, 17, 9]
    assert values(items[:3]) == pytest.approx([0.5, 0.3, 0.1])
    assert "DIH now minus DIH before it" in page.text


def test_a_fresh_non_image_run_renders_and_refreshes():
    store = HardnessStore(StoreConfig(n=10, epochs=3, run="synthetic-y"))
    app = build_app(LocalDirectory({"synthetic-y": store}))
    page = asyncio.run(get(app, "/runs/synthetic-y"))
    assert page.status_code == 200 and '<meta http-equiv="refresh"' in page.text
    dom = parse(page.text)
    assert dom.by_id("status").text == "running"
    assert not dom.find("svg", "digit") and not dom.find("rect", "bar")
    assert len(dom.by_id("hardest").find("li", "sample")) == 10  # all at the initial DIH
    assert not dom.by_id("rising").find("li") and "no sample has been observed yet" in page.text

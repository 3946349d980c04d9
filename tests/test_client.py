"""curriculum.Client: the methods of the Python Run handle over REST, with the same answers and the
same exception classes; the README lists every method of both."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import curriculum
from curriculum.client import Client
from curriculum.run import Run
from scorer_service.config import run_config
from scorer_service.core.tokens import TokenTable
from scorer_service.store import HardnessStore
from scorer_service.web.app import build_app
from scorer_service.web.auth import LocalTokens
from scorer_service.web.directory import LocalDirectory
from tests.helpers import batch, uvicorn_server

ROOT = Path(__file__).parents[1]


def public(cls) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_the_client_has_every_method_of_run_with_the_same_parameters():
    assert public(Client) - {"close"} == public(Run)
    for name in public(Run) & public(Client):
        ours, theirs = getattr(Run, name), getattr(Client, name)
        if callable(ours):
            assert list(inspect.signature(ours).parameters.items()) == list(
                inspect.signature(theirs).parameters.items()
            ), name


def test_the_readme_lists_every_method_of_both():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- handle methods -->")[1].split("<!-- end handle methods -->")[0]
    listed = set(re.findall(r"^\| `([a-z_]+)", table, flags=re.M))
    assert listed == public(Run) == public(Client) - {"close"}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    snap = str(tmp_path_factory.mktemp("snap"))
    store = HardnessStore(run_config("c1", 30, epochs=3, warm_start=1, cycle_length=1, snapshot_dir=snap))
    store.subset(0, 0, 1)
    store.ingest(batch(range(30), np.linspace(0, 3, 30), [True] * 30, step=0, lr=0.5))
    store.record_round(0, {"test_accuracy": 0.5})
    store.subset(1, 0, 1)

    def factory(run, n, num_classes, settings):
        return HardnessStore(
            run_config(run, n, num_classes=num_classes, **{"snapshot_dir": snap, **settings})
        )

    table = TokenTable()
    read = table.create("read", run="c1")[0]
    app = build_app(LocalDirectory({"c1": store}, factory), token="root", tokens=LocalTokens(table))
    with uvicorn_server(app) as url:
        yield url, store, read


def test_the_client_answers_what_the_store_answers(api):
    url, store, read = api
    with Client(url, token=read, run="c1") as c:
        assert c.info().n == 30 and c.info().state == "running" and c.config.epochs == 3
        assert [r.round for r in c.rounds()] == [0, 1]
        np.testing.assert_array_equal(c.subset(1), store.round_subset(1, 0, 100).ids)
        scores = c.scores(("dih", "seen", "last_loss"))
        np.testing.assert_array_equal(scores["seen"], store.column("seen"))
        np.testing.assert_allclose(scores["dih"], store.column("dih"))
        assert scores["seen"].dtype == store.column("seen").dtype
        assert [s.id for s in c.samples(range(1200 % 30))] == list(range(1200 % 30))
        assert c.top("last_loss", 3) == store.top("last_loss", 3)
        assert c.label_issues(0.5, 5) == store.label_issues(0.5, 5)


def test_the_client_raises_what_the_python_path_raises(api):
    url, _, read = api
    with Client(url, token=read, run="c1") as c:
        with pytest.raises(curriculum.InvalidQuery, match="metric"):
            c.top("shoe_size")
        with pytest.raises(curriculum.NotFound, match="round 7 was never selected"):
            c.subset(7)
        with pytest.raises(curriculum.Forbidden, match="has the role read; this needs admin"):
            c.snapshot()
        with pytest.raises(curriculum.Forbidden, match="not run 'c2'"):
            Client(url, token=read, run="c2").info()
    with pytest.raises(curriculum.Unauthorized):
        Client(url, token="wrong", run="c1").info()
    admin = Client(url, token="root")
    with pytest.raises(ValueError, match="no run"):
        admin.info()
    with pytest.raises(curriculum.RunExists, match="'c1' already exists"):
        admin.create_run("c1", 10)
    with pytest.raises(ValueError, match="unknown run settings: shoe_size") as e:
        admin.create_run("c3", 10, shoe_size=3)
    assert type(e.value) is ValueError  # as create_run raises it


def test_a_run_created_through_the_client_lives_and_dies_over_rest(api):
    url, _, _ = api
    admin = Client(url, token="root")
    run = admin.create_run("c2", 40, epochs=2, method="dihcl-greedy", warm_start=1)
    assert (run.name, run.info().n, run.info().method) == ("c2", 40, "dihcl-greedy")
    assert [r.run for r in admin.runs(method="dihcl-greedy")] == ["c2"]
    assert [r.run for r in admin.runs(prefix="c")] == ["c1", "c2"]
    assert run.snapshot() >= 1
    run.delete()
    assert [r.run for r in admin.runs()] == ["c1"]
    with pytest.raises(curriculum.NotFound):
        run.info()


@pytest.fixture(scope="module")
def both_transports(ray_session):
    """One store actor, reached through Ray (the trainers' endpoint, the Run handle) and through
    REST (HttpEndpoint, Client) served by the Ray directory."""
    import ray

    from curriculum._internal.ray_endpoint import ActorEndpoint
    from curriculum.http_endpoint import HttpEndpoint
    from scorer_service.config import StoreConfig
    from scorer_service.ray.actor import create_store
    from scorer_service.ray.serve import RayDirectory

    # No snapshot_dir: a snapshot is a Conflict.
    handle = create_store(StoreConfig.create(n=20, epochs=2, run="errors", warm_start=1, cycle_length=1))
    with uvicorn_server(build_app(RayDirectory(), token="root")) as url:
        http = HttpEndpoint(url, "errors", token="root", retries=0)
        over_ray = ActorEndpoint("errors"), curriculum.attach_run("errors")
        yield over_ray, (http, Client(url, "root", run="errors"))
        http.close()
    ray.kill(handle)


def test_every_transport_raises_the_class_and_message_the_store_raised(both_transports):
    """NotFound, InvalidQuery, InvalidBatch and Conflict keep their class over Ray and over REST."""
    (ray_endpoint, ray_run), (http_endpoint, http_client) = both_transports
    out_of_range = batch([25], [1.0], [True], step=0, lr=0.1)
    cases = [
        (curriculum.NotFound, lambda e, r: e.record_round(7, {"test_accuracy": 0.5})),
        (curriculum.NotFound, lambda e, r: r.subset(1)),
        (curriculum.InvalidQuery, lambda e, r: e.subset(5, 0, 1)),
        (curriculum.InvalidQuery, lambda e, r: e.subset(0, 3, 2)),
        (curriculum.InvalidBatch, lambda e, r: e.ingest(out_of_range)),
        (curriculum.Conflict, lambda e, r: r.snapshot()),
    ]
    for expected, call in cases:
        raised = []
        for endpoint, handle in ((ray_endpoint, ray_run), (http_endpoint, http_client)):
            with pytest.raises(expected) as e:
                call(endpoint, handle)
            assert isinstance(e.value, curriculum.CurriculumError)
            raised.append(e.value)
        assert type(raised[0]) is type(raised[1]) is expected
        assert str(raised[0]) == str(raised[1]), raised


def test_a_store_that_cannot_answer_is_store_unavailable_over_rest():
    from curriculum.http_endpoint import HttpEndpoint

    class Restarting(LocalDirectory):
        async def call(self, run, method, *args):
            raise curriculum.StoreUnavailable(f"the store of run {run!r} is not available")

    with uvicorn_server(build_app(Restarting({"r": None}), token="root")) as url:
        http = HttpEndpoint(url, "r", token="root", retries=0)
        for ask in (http.info, Client(url, "root", run="r").info):
            with pytest.raises(curriculum.StoreUnavailable, match="run 'r' is not available now"):
                ask()
        http.close()

"""The REST API against its own OpenAPI document (schemathesis, every check: status codes, content types,
response schemas, Allow headers, schema-valid requests accepted and invalid ones rejected); hostile
requests get the store's one-line message and nothing of the server's internals; the bearer token."""

import asyncio
import time

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from scorer_service.config import StoreConfig, run_config
from scorer_service.core.errors import InvalidQuery
from scorer_service.core.tokens import TokenTable
from scorer_service.store import HardnessStore
from scorer_service.web import routes
from scorer_service.web.app import build_app
from scorer_service.web.auth import LocalTokens
from scorer_service.web.directory import LocalDirectory
from tests.helpers import assert_no_leak, batch, hostile_requests

N = 50


def make_store(run: str) -> HardnessStore:
    s = HardnessStore(
        StoreConfig.create(n=N, epochs=4, run=run, method="dihcl-greedy", warm_start=1, cycle_length=1)
    )
    s.subset(0, 0, 1)
    s.ingest(batch(range(N), np.linspace(0, 3, N), [True] * N, step=0, lr=0.5))
    s.record_round(0, {"test_accuracy": 0.5})
    s.subset(1, 0, 2)
    return s


def small_store(run, n, num_classes, settings):
    """Runs created over the API, through create_run's checks; small ones only (fuzzed sizes)."""
    config = run_config(run, n, num_classes=num_classes, **settings)
    if n > 500:
        raise InvalidQuery(f"this test service holds runs of up to 500 samples, not {n}")
    return HardnessStore(config)


class EveryName(LocalDirectory):
    """Any run name reaches a real store: random names would otherwise all stop at 404 before any
    store code runs."""

    async def call(self, run, method, *args):
        return await super().call("r1", method, *args)


def stores():
    return {"r1": make_store("r1"), "r2": make_store("r2")}


# The all-runs admin token of CURRICULUM_API_TOKEN; no token at all (every route that needs one
# answers 401, as the document says); scoped tokens (every route needs one), called with an admin's.
app = build_app(EveryName(stores(), small_store), token="secret")
open_app = build_app(EveryName(stores(), small_store), token="")
scoped = TokenTable()
scoped.create("read", run="r2")
ADMIN = scoped.create("admin")[0]
scoped_app = build_app(EveryName(stores(), small_store), token="", tokens=LocalTokens(scoped))
# A schema-valid request may still be one the store refuses (a rank beyond the world size, a batch
# without a loss column): a 400 naming why, as the document says.
CONFIG = SchemathesisConfig.from_str(
    """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "425", "429"]
"""
)
schemas = {
    name: (schemathesis.openapi.from_asgi("/openapi.json", a, config=CONFIG), token)
    for name, a, token in [
        ("env token", app, "secret"),
        ("no token", open_app, None),
        ("scoped tokens", scoped_app, ADMIN),
    ]
}


@schemas["env token"][0].parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_is_what_its_openapi_document_says(case):
    check_case(case, "secret")


@schemas["no token"][0].parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_without_a_token_configured_the_api_is_what_its_document_says(case):
    check_case(case, None)


@schemas["scoped tokens"][0].parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_with_scoped_tokens_the_api_is_what_its_document_says(case):
    check_case(case, ADMIN)


# The stateful phase: runs created over the API, then read, snapshotted, rewound and deleted through the
# document's links, in random orders (a deleted run must answer 404, a created one 200); with the
# all-runs token of CURRICULUM_API_TOKEN, and with a scoped admin token beside a scoped reader.
def lifecycle(token: str, tokens: TokenTable | None, examples: int) -> type:
    runs = LocalDirectory({}, small_store)
    built = build_app(runs, token="" if tokens else token, tokens=LocalTokens(tokens) if tokens else None)
    schema = schemathesis.openapi.from_asgi("/openapi.json", built, config=CONFIG)

    class RunLifecycle(schema.as_state_machine()):
        def setup(self):
            runs.stores.clear()  # each scenario starts with no runs: replays draw the same way

        def get_call_kwargs(self, case):
            return {"headers": {"Authorization": f"Bearer {token}"}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            super().validate_response(response, case, additional_checks, **kwargs)
            check_body(response)

    case = RunLifecycle.TestCase
    case.settings = settings(
        max_examples=examples, stateful_step_count=8, deadline=None, suppress_health_check=list(HealthCheck)
    )
    return case


lifecycle_tokens = TokenTable()
lifecycle_tokens.create("read", prefix="r")
TestRunLifecycle = lifecycle("secret", None, 30)
TestRunLifecycleWithScopedTokens = lifecycle(lifecycle_tokens.create("admin")[0], lifecycle_tokens, 15)


def test_the_document_links_a_created_run_to_its_routes():
    links = schemas["env token"][0].raw_schema["paths"]["/v1/runs"]["post"]["responses"]["201"]["links"]
    assert {"GET /v1/runs/{run}", "DELETE /v1/runs/{run}", "POST /v1/runs/{run}/snapshot"} <= set(links)
    assert all(link["parameters"] == {"run": "$response.body#/run"} for link in links.values())


def check_case(case, token) -> None:
    response = case.call(headers={"Authorization": f"Bearer {token}"} if token else None)
    case.validate_response(response)  # every built-in check
    check_body(response)


def check_body(response) -> None:
    if response.headers.get("content-type", [""])[0].startswith(("application/json", "text/")):
        assert_no_leak(response.text)
    if response.status_code >= 400:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail


@pytest.fixture(scope="module")
def client():
    return TestClient(build_app(LocalDirectory({"r1": make_store("r1")}), token="secret"))


@pytest.fixture(scope="module", params=["env token", "no token", "scoped tokens"])
def any_client(request):
    """The API with the environment's token, with no token configured, and with scoped tokens (each
    request then carries an all-runs scoped admin's token)."""
    runs = LocalDirectory({"r1": make_store("r1")})
    if request.param == "scoped tokens":
        table = TokenTable()
        table.create("read", run="r2")
        headers = {"Authorization": f"Bearer {table.create('admin')[0]}"}
        return TestClient(build_app(runs, token="", tokens=LocalTokens(table)), headers=headers)
    return TestClient(build_app(runs, token="secret" if request.param == "env token" else ""))


@pytest.mark.parametrize("path, params, status, message", hostile_requests("r1", N))
def test_hostile_requests_get_one_line_and_nothing_internal(any_client, path, params, status, message):
    r = any_client.get(path, params=params)
    assert r.status_code == status, r.text
    assert_no_leak(r.text)
    assert set(r.json()) <= {"detail", "type"} and message in r.json()["detail"], r.text
    assert "\n" not in r.json()["detail"]


def test_a_path_answers_405_naming_all_its_methods(client):
    r = client.request("PATCH", "/v1/runs/r1")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    assert client.options("/v1/runs/r1/snapshot").headers["allow"] == "POST"


def test_a_store_failure_is_a_500_that_says_only_that(caplog):
    class Broken(HardnessStore):
        def top(self, *args):
            raise RuntimeError("secret internals at 0xdeadbeef")

    c = TestClient(build_app(LocalDirectory({"b": Broken(StoreConfig(n=5, epochs=2, run="b"))})))
    r = c.get("/v1/runs/b/top")
    assert r.status_code == 500
    assert r.json() == {"detail": "the store of run 'b' failed; the server log has the details"}
    assert "secret internals at 0xdeadbeef" in caplog.text  # logged server-side


@pytest.fixture
def token_client(tmp_path):
    store = HardnessStore(StoreConfig.create(n=5, epochs=2, run="t", snapshot_dir=str(tmp_path)))
    return TestClient(build_app(LocalDirectory({"t": store}), token="s3cret"))


def test_state_changes_need_the_bearer_token(token_client):
    client = token_client
    assert client.post("/v1/runs/t/snapshot").status_code == 401
    assert client.post("/v1/runs/t/snapshot", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.post("/v1/runs/t/snapshot", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 201 and ok.json() == {"run": "t", "snapshot": 2}  # 1 is the initial snapshot
    assert client.delete("/v1/runs/t").status_code == 401
    assert client.delete("/v1/runs/t", headers={"Authorization": "Bearer s3cret"}).json()["deleted"] is True
    assert client.get("/v1/runs/t").status_code == 404
    assert client.get("/v1/runs").json() == []


def test_state_changes_are_disabled_without_a_configured_token(monkeypatch):
    monkeypatch.delenv("CURRICULUM_API_TOKEN", raising=False)
    monkeypatch.delenv("CURRICULUM_API_TOKEN_FILE", raising=False)
    c = TestClient(build_app(LocalDirectory({"t": HardnessStore(StoreConfig(n=5, epochs=2))})))
    for headers in ({"Authorization": "Bearer x"}, {}):
        r = c.delete("/v1/runs/t", headers=headers)
        assert r.status_code == 401 and "CURRICULUM_API_TOKEN" in r.json()["detail"]
    assert c.get("/v1/runs/t").status_code == 200  # nothing was deleted


@pytest.mark.parametrize(
    "path, params, status, error_type, message",
    [
        ("/v1/runs/r1/rounds/0/subset", {"offset": "99999999999999999999"}, 422, "InvalidQuery", "offset"),
        ("/v1/runs/r1/rounds/0/subset", {"offset": str(2**53 - 1)}, 200, None, None),
        ("/v1/runs/r1/top", {"metric": "nope"}, 422, "InvalidQuery", "metric"),
        ("/v1/runs/r1/samples/77", None, 404, "NotFound", "sample 77 does not exist"),
        ("/v1/runs/r1/rounds/9/subset", None, 404, "NotFound", "round 9 was never selected"),
        ("/v1/runs/zz/rounds/0/slice", {"rank": 0, "world_size": 1}, 404, "NotFound", "no store for run"),
        (
            "/v1/runs/r1/rounds/0/slice",
            {"rank": 0, "world_size": 1, "step": 2**70},
            422,
            "InvalidQuery",
            "step",
        ),
    ],
)
def test_bad_input_is_a_4xx_that_names_its_error_class(client, path, params, status, error_type, message):
    r = client.get(path, params=params, headers={"Authorization": "Bearer secret"})
    assert r.status_code == status, r.text
    if error_type:
        assert r.json()["type"] == error_type and message in r.json()["detail"], r.text
    else:
        assert r.json()["ids"] == [] and r.json()["total"] == N


def test_health_asks_every_store_at_once_within_one_deadline(monkeypatch):
    class Slow(LocalDirectory):
        """Each store answers after its own delay (seconds); None: never."""

        def __init__(self, delays):
            super().__init__({run: make_store(run) for run in delays})
            self.delays = delays

        async def call(self, run, method, *args):
            await asyncio.sleep(self.delays[run] if self.delays[run] is not None else 3600)
            return await super().call(run, method, *args)

    monkeypatch.setattr(routes, "HEALTH_DEADLINE_S", 2.0)
    slow = TestClient(build_app(Slow({f"s{i}": 1.0 for i in range(6)})))
    t0 = time.perf_counter()
    assert slow.get("/v1/health").json() == {
        "status": "ok",
        "store_reachable": True,
        "runs": [f"s{i}" for i in range(6)],
        "unreachable": [],
        "error": None,
    }
    assert time.perf_counter() - t0 < 2.0  # six 1 s stores asked one after another would take 6 s
    hung = TestClient(build_app(Slow({"a": 0.0, "hung": None, "b": 0.1})))
    t0 = time.perf_counter()
    h = hung.get("/v1/health").json()
    assert h["status"] == "degraded" and h["store_reachable"] is False and h["unreachable"] == ["hung"]
    assert 2.0 <= time.perf_counter() - t0 < 3.0

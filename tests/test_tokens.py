"""Scoped tokens: a role per token, limited to one run, a run-name prefix or all runs; 401 for a
missing or unknown token, 403 naming what a known one lacks, nothing of another run in any answer;
runs created, listed, snapshotted and deleted over REST with create_run's checks and messages."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer_service.config import run_config
from scorer_service.core.tokens import ROLE_DOES, TokenTable, hash_token
from scorer_service.store import HardnessStore
from scorer_service.web.app import build_app
from scorer_service.web.auth import LocalTokens
from scorer_service.web.directory import LocalDirectory
from tests.helpers import batch

A, B = "team-a-cnn", "team-b-vit"
ROOT = {"Authorization": "Bearer root"}


def make_store(run: str, n: int = 20, num_classes=None, settings=None, snapshot_dir=None) -> HardnessStore:
    extra = {"snapshot_dir": snapshot_dir} if snapshot_dir else {}
    config = run_config(
        run, n, num_classes=num_classes, **{"warm_start": 1, "epochs": 3, **extra, **(settings or {})}
    )
    return HardnessStore(config)


@pytest.fixture
def service(tmp_path):
    """Runs A and B with scores, the all-runs admin token ``root``, and a token table on disk."""
    stores = {run: make_store(run, snapshot_dir=str(tmp_path / "snap")) for run in (A, B)}
    for s in stores.values():
        s.subset(0, 0, 1)
        s.ingest(batch(range(20), np.linspace(0, 2, 20), [True] * 20, step=0, lr=0.1))

    def factory(run, n, num_classes, settings):
        return make_store(run, n, num_classes, {"snapshot_dir": str(tmp_path / "snap"), **settings})

    table = TokenTable(str(tmp_path / "tokens.json"))
    app = build_app(LocalDirectory(stores, factory), token="root", tokens=LocalTokens(table))
    return TestClient(app), table, stores


def new_token(client, role, **scope) -> str:
    r = client.post("/v1/tokens", json={"role": role, **scope}, headers=ROOT)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def token_id(client, secret: str) -> str:
    """The id of the token ``secret``: the one a 403 to it names (listings never show secrets)."""
    listed = client.get("/v1/tokens", headers=ROOT).json()
    assert secret not in str(listed)
    detail = client.get(f"/v1/runs/{B}", headers=bearer(secret)).json()["detail"]
    (found,) = [t["id"] for t in listed if detail.startswith(f"token {t['id']} ")]
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Every route of a run, with the parameters it needs: (method, path, query, json body).
QUERY = {
    "/v1/runs/{run}/samples": {"ids": "1,2"},
    "/v1/runs/{run}/byproducts": {"round": 0, "rank": 0, "writer": "w", "seq": 0},
    "/v1/runs/{run}/rounds/{round_}/slice": {"rank": 0, "world_size": 1},
    "/v1/runs/{run}/rounds/{round_}/shard": {"rank": 0, "world_size": 1},
    "/v1/runs/{run}/rewind": {"completed_round": -1},
}
BODY = {
    "/v1/runs/{run}/rounds/{round_}/metrics": {"acc": 0.5},
    "/v1/runs/{run}/byproducts": {"sample_id": [1]},
}


def run_routes(client) -> list[tuple[str, str, str]]:
    """(method, path template, role it needs) for every documented route of one run."""
    spec = client.get("/openapi.json").json()["paths"]
    routes = []
    for path, ops in spec.items():
        if "{run}" not in path:
            continue
        for method in ops:
            writes = method != "get" or path.endswith(("/slice", "/shard"))
            routes.append((method.upper(), path, "write" if writes else "read"))
    return routes


def call(client, method, template, run, headers):
    path = template.replace("{run}", run).replace("{round_}", "0").replace("{sample_id}", "1")
    return client.request(method, path, params=QUERY.get(template), json=BODY.get(template), headers=headers)


def test_a_read_token_for_one_run_reads_it_and_nothing_else(service):
    client, _, stores = service
    read_a = new_token(client, "read", run=A)
    routes = run_routes(client)
    assert len(routes) >= 14 and {r[2] for r in routes} == {"read", "write"}
    before = {run: s.state.copy() for run, s in stores.items()}
    tid = token_id(client, read_a)
    lacks = {
        f"token {tid} reaches run '{A}', not run '{B}'",
        *(f"token {tid} has the role read; this needs {r} ({ROLE_DOES[r]})" for r in ("train", "admin")),
    }
    for method, template, kind in routes:
        mine = call(client, method, template, A, bearer(read_a))
        other = call(client, method, template, B, bearer(read_a))
        assert other.status_code == 403 and other.json()["type"] == "Forbidden", (
            method,
            template,
            other.text,
        )
        assert other.json()["detail"] in lacks  # the token's own scope and the route's need, no more
        if kind == "read":
            assert mine.status_code == 200, (method, template, mine.text)
            assert B not in mine.text
        else:
            assert mine.status_code == 403 and "has the role read; this needs" in mine.json()["detail"], (
                method,
                template,
                mine.text,
            )
    for method, path in [("POST", "/v1/runs"), ("GET", "/v1/tokens"), ("POST", "/v1/tokens")]:
        r = client.request(
            method, path, json={"name": A, "n": 5} if path == "/v1/runs" else None, headers=bearer(read_a)
        )
        assert r.status_code == 403, (path, r.text)
    # Listings name only what the token reaches; nothing changed in either store.
    assert [r["run"] for r in client.get("/v1/runs", headers=bearer(read_a)).json()] == [A]
    assert client.get("/v1/health", headers=bearer(read_a)).json()["runs"] == [A]
    assert client.get("/v1/health").json()["runs"] == []  # anonymous, once scoped tokens exist
    assert B not in client.get("/", headers=bearer(read_a)).text
    assert client.get("/metrics", headers=bearer(read_a)).status_code == 403  # all runs' counters
    for run, s in stores.items():
        for name, col in before[run].columns.items():
            np.testing.assert_array_equal(s.state.columns[name], col)
    assert set(stores) == {A, B}


def test_roles_include_the_ones_below_and_scopes_reach_their_runs(service):
    client, _, stores = service
    train_prefix = new_token(client, "train", prefix="team-a-")
    admin_b = new_token(client, "admin", run=B)
    shard = client.get(
        f"/v1/runs/{A}/rounds/0/slice", params={"rank": 0, "world_size": 1}, headers=bearer(train_prefix)
    )
    assert shard.status_code == 200 and len(shard.json()["ids"]) == 20
    assert client.get(f"/v1/runs/{A}/top", headers=bearer(train_prefix)).status_code == 200  # train reads
    r = client.post(f"/v1/runs/{A}/snapshot", headers=bearer(train_prefix))
    assert r.status_code == 403 and "has the role train; this needs admin" in r.json()["detail"]
    assert client.get(f"/v1/runs/{B}/top", headers=bearer(train_prefix)).status_code == 403
    created = client.post("/v1/runs", json={"name": "team-a-new", "n": 5}, headers=bearer(admin_b))
    assert created.status_code == 403 and "not run 'team-a-new'" in created.json()["detail"]
    assert client.delete(f"/v1/runs/{B}", headers=bearer(admin_b)).json() == {"run": B, "deleted": True}
    assert set(stores) == {A}


def test_tokens_are_kept_hashed_and_revoked_without_a_restart(service, tmp_path):
    client, table, _ = service
    secret = new_token(client, "read", run=A)
    on_disk = (tmp_path / "tokens.json").read_text()
    assert secret not in on_disk and hash_token(secret) in on_disk
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
    listed = client.get("/v1/tokens", headers=ROOT).json()
    assert [(t["role"], t["run"], t["prefix"]) for t in listed] == [("read", A, None)]
    assert client.get(f"/v1/runs/{A}", headers=bearer(secret)).status_code == 200
    assert client.delete(f"/v1/tokens/{listed[0]['id']}", headers=ROOT).json()["id"] == listed[0]["id"]
    r = client.get(f"/v1/runs/{A}", headers=bearer(secret))
    assert r.status_code == 401 and r.json()["type"] == "Unauthorized"
    assert client.delete(f"/v1/tokens/{listed[0]['id']}", headers=ROOT).status_code == 404
    assert TokenTable(str(tmp_path / "tokens.json")).grants() == []  # a restart reads the same table


def test_an_admin_manages_the_tokens_inside_its_scope_and_no_others(service):
    client, table, _ = service
    team_a = bearer(new_token(client, "admin", prefix="team-a-"))
    others = new_token(client, "read", run=B)
    r = client.post("/v1/tokens", json={"role": "read", "run": A}, headers=team_a)
    assert r.status_code == 201 and (r.json()["run"], r.json()["role"]) == (A, "read")
    reader = r.json()["token"]
    assert client.get(f"/v1/runs/{A}", headers=bearer(reader)).status_code == 200
    r = client.post("/v1/tokens", json={"role": "train", "prefix": "team-a-exp-"}, headers=team_a)
    assert r.status_code == 201
    for outside in ({"run": B}, {"prefix": "team-"}, {}):
        r = client.post("/v1/tokens", json={"role": "read", **outside}, headers=team_a)
        assert r.status_code == 403 and r.json()["type"] == "Forbidden", outside
        assert "reaches runs named 'team-a-'..., not " in r.json()["detail"]
    assert len(table.grants()) == 4  # the refused ones created nothing
    listed = client.get("/v1/tokens", headers=team_a).json()
    assert sorted(t["run"] or t["prefix"] for t in listed) == sorted([A, "team-a-", "team-a-exp-"])
    (hidden,) = [t["id"] for t in client.get("/v1/tokens", headers=ROOT).json() if t["run"] == B]
    r = client.delete(f"/v1/tokens/{hidden}", headers=team_a)
    assert r.status_code == 404 and r.json()["detail"] == f"no token {hidden!r}"
    assert client.get(f"/v1/runs/{B}", headers=bearer(others)).status_code == 200  # still works
    mine = next(t["id"] for t in listed if t["run"] == A)
    assert client.delete(f"/v1/tokens/{mine}", headers=team_a).status_code == 200
    assert client.get(f"/v1/runs/{A}", headers=bearer(reader)).status_code == 401
    one_run = bearer(new_token(client, "admin", run=A))
    assert client.post("/v1/tokens", json={"role": "read", "run": A}, headers=one_run).status_code == 201
    r = client.post("/v1/tokens", json={"role": "read", "prefix": A}, headers=one_run)
    assert r.status_code == 403  # a prefix reaches runs beyond the one it administers


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"role": "root"}, "body parameter role"),
        ({"role": "read", "run": A, "prefix": "team-"}, "one run or to a run-name prefix, not both"),
        ({"role": "read", "run": ""}, "body parameter run"),
    ],
)
def test_a_bad_token_request_is_a_4xx_and_creates_nothing(service, spec, message):
    client, table, _ = service
    r = client.post("/v1/tokens", json=spec, headers=ROOT)
    assert r.status_code in (400, 422) and message in r.json()["detail"], r.text
    assert table.grants() == []


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    value=st.one_of(
        st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
        st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80).map("Bearer ".__add__),
        st.sampled_from(
            ["Bearer", "Bearer ", "bearer root ", "Basic cm9vdA==", "Bearer root\t", "Bearer roo"]
        ),
    ),
    route=st.sampled_from(
        [("GET", f"/v1/runs/{A}/top"), ("POST", f"/v1/runs/{A}/snapshot"), ("GET", "/v1/tokens")]
    ),
)
def test_a_fuzzed_authorization_header_is_a_401_never_more(fuzz_client, value, route):
    if value.strip() in ("Bearer root", "bearer root"):
        return  # the real token, however spelled
    r = fuzz_client.request(*route, headers={"Authorization": value.encode("latin-1")})
    assert r.status_code == 401, (value, r.text)
    assert r.json()["type"] == "Unauthorized" and r.headers["www-authenticate"] == "Bearer"
    assert A not in r.text and B not in r.text


@pytest.fixture(scope="module")
def fuzz_client():
    table = TokenTable()
    table.create("read", run=B)
    stores = {A: make_store(A), B: make_store(B)}
    return TestClient(build_app(LocalDirectory(stores), token="root", tokens=LocalTokens(table)))


def test_runs_are_created_listed_and_deleted_over_rest_with_create_runs_checks(service):
    client, _, stores = service
    spec = {"name": "team-a-2", "n": 30, "settings": {"epochs": 4, "method": "dihcl-greedy", "warm_start": 1}}
    r = client.post("/v1/runs", json=spec, headers=ROOT)
    assert r.status_code == 201, r.text
    info = r.json()
    assert (info["run"], info["n"], info["epochs"], info["method"], info["state"]) == (
        "team-a-2",
        30,
        4,
        "dihcl-greedy",
        "running",
    )
    again = client.post("/v1/runs", json=spec, headers=ROOT)
    assert (
        again.status_code == 409
        and again.json()["type"] == "RunExists"
        and "team-a-2" in again.json()["detail"]
    )
    assert client.post("/v1/runs", json={**spec, "replace": True}, headers=ROOT).status_code == 201
    for bad, message in [
        ({"epochs": "4"}, "setting epochs must be int, got '4'"),
        ({"shoe_size": 4}, "unknown run settings: shoe_size"),
        ({"method": "nope"}, "unknown selector 'nope'"),
        ({"gamma": 2.0}, "gamma must be in (0, 1], got 2.0"),
        ({"run": "x"}, "unknown run settings: run"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)) as python_path:
            run_config("team-c", 5, **bad)
        r = client.post("/v1/runs", json={"name": "team-c", "n": 5, "settings": bad}, headers=ROOT)
        assert r.status_code == 400 and r.json() == {"detail": str(python_path.value), "type": "ValueError"}
    for name, message in [("..", "cannot name a directory"), ("a\\b", "cannot name a directory"),
                          ("\u00e9" * 101, "longer than 200 bytes")]:  # fmt: skip
        r = client.post("/v1/runs", json={"name": name, "n": 5}, headers=ROOT)
        assert r.status_code == 400 and r.json()["type"] == "ValueError" and message in r.json()["detail"]
    assert "team-c" not in stores and ".." not in stores
    listed = lambda **q: [r["run"] for r in client.get("/v1/runs", params=q, headers=ROOT).json()]  # noqa: E731
    assert listed() == ["team-a-2", A, B]
    assert listed(prefix="team-a") == ["team-a-2", A]
    assert listed(method="dihcl-greedy") == ["team-a-2"]
    assert listed(state="finished") == [] and listed(state="running") == ["team-a-2", A, B]
    assert client.get("/v1/runs", params={"state": "paused"}, headers=ROOT).status_code == 422
    snap = client.post(f"/v1/runs/{A}/snapshot", headers=ROOT)
    assert snap.status_code == 201 and snap.json()["run"] == A
    assert client.delete("/v1/runs/team-a-2", headers=ROOT).json() == {"run": "team-a-2", "deleted": True}
    assert client.get("/v1/runs/team-a-2", headers=ROOT).status_code == 404


def test_a_token_table_that_cannot_answer_is_a_503_and_health_still_answers(caplog):
    class Down(LocalTokens):
        async def entries(self):
            raise ConnectionError("token actor at 10.0.0.7 is gone")

    client = TestClient(build_app(LocalDirectory({A: make_store(A)}), token="root", tokens=Down()))
    r = client.get(f"/v1/runs/{A}/top", headers=ROOT)
    assert r.status_code == 503 and r.json() == {"detail": "the service cannot check tokens now; try again"}
    assert client.get("/v1/tokens", headers=ROOT).status_code == 503
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["runs"] == []  # who asks is unknown: no run is named
    assert "10.0.0.7" in caplog.text and "10.0.0.7" not in r.text


def test_a_browser_signs_in_with_a_scoped_token_and_sees_only_its_runs(service):
    client, _, _ = service
    reader = new_token(client, "read", run=A)
    r = client.get(f"/runs/{A}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/runs/{A}"
    form = client.get(r.headers["location"])
    assert form.status_code == 200 and 'name="token"' in form.text and f'value="/runs/{A}"' in form.text
    r = client.post("/login", data={"token": "cur_guess", "next": f"/runs/{A}"}, follow_redirects=False)
    assert r.status_code == 401 and "unknown token" in r.text and "set-cookie" not in r.headers
    r = client.post("/login", data={"token": reader, "next": f"/runs/{A}"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/runs/{A}"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = client.get(f"/runs/{A}")  # the client keeps the cookie, as a browser does
    assert page.status_code == 200 and 'id="run-name"' in page.text and A in page.text
    assert client.get(f"/runs/{B}").status_code == 403
    index = client.get("/")
    assert f'href="/runs/{A}"' in index.text and B not in index.text and 'id="sign-out"' in index.text
    # The cookie opens pages only: the API never acts on it.
    assert client.get(f"/v1/runs/{A}").status_code == 401
    assert client.post(f"/v1/runs/{A}/snapshot").status_code == 401
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and client.get(f"/runs/{A}", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("where", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "runs"])
def test_sign_in_never_sends_a_browser_to_another_site(service, where):
    client, _, _ = service
    r = client.post("/login", data={"token": "root", "next": where}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_malformed_sign_in_form_is_a_400_and_sets_no_cookie(service):
    client, _, _ = service
    body = "&".join(f"f{i}=x" for i in range(10)) + "&token=root"
    r = client.post(
        "/login",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 400 and "token and next" in r.text and "set-cookie" not in r.headers

"""docker-compose: one head and two workers sharing auth, shared memory and snapshots, and a file
that docker-compose itself accepts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy_files import (
    COMPOSE,
    HEAD_PORTS,
    REST_PORT,
    ROOT,
    SCRIPTS,
    SNAPSHOT_ENV,
    load_yaml,
)


def _size_bytes(text: str | int) -> float:
    if isinstance(text, int):
        return float(text)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)i?b?", str(text).strip().lower())
    assert m, f"unreadable size {text!r}"
    return float(m.group(1)) * 1024 ** " kmg".index(m.group(2) or " ")


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def _compose_nodes() -> tuple[dict, dict[str, dict], dict[str, dict]]:
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    heads = {k: v for k, v in services.items() if "ray start --head" in _command(v)}
    workers = {k: v for k, v in services.items() if "ray start --address" in _command(v)}
    return compose, heads, workers


def test_compose_has_a_head_and_two_workers():
    _, heads, workers = _compose_nodes()
    assert len(heads) == 1 and len(workers) == 2
    (head_name,) = heads
    for name, worker in workers.items():
        assert re.search(rf"--address[= ]{re.escape(head_name)}:6379\b", _command(worker)), name
        depends = worker.get("depends_on", [])
        assert head_name in depends, name


def test_compose_nodes_share_auth_shm_snapshots_and_healthchecks():
    compose, heads, workers = _compose_nodes()
    nodes = {**heads, **workers}
    auth_modes = {_env(s).get("RAY_AUTH_MODE") for s in nodes.values()}
    assert len(auth_modes) == 1 and None not in auth_modes
    assert all("RAY_AUTH_TOKEN" in _env(s) for s in nodes.values())
    named_volumes = set(compose.get("volumes") or {})
    snapshot_dirs = set()
    for name, service in nodes.items():
        assert "shm_size" in service, name
        assert "mem_limit" in service, name
        # Ray's object store takes 30 % of the container's memory, all of it in /dev/shm.
        assert _size_bytes(service["shm_size"]) >= 0.3 * _size_bytes(service["mem_limit"]), name
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source in named_volumes:
                mounts[target] = source
        snapshots = _env(service).get(SNAPSHOT_ENV)
        assert snapshots, name
        assert any(snapshots == t or snapshots.startswith(t.rstrip("/") + "/") for t in mounts), name
        snapshot_dirs.add((snapshots, tuple(sorted(mounts.items()))))
        test = service.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], name
    assert len(snapshot_dirs) == 1, "nodes see snapshots at different paths or volumes"


def test_compose_head_publishes_ports_and_starts_the_rest_api():
    _, heads, _ = _compose_nodes()
    (head,) = heads.values()
    published = set()
    for port in head["ports"]:
        host_port, container_port = str(port).rsplit(":", 2)[-2:]
        published.add(int(container_port.split("/")[0]))
        assert host_port == container_port.split("/")[0]
    assert HEAD_PORTS | {REST_PORT} <= published
    command = _command(head)
    serve = [
        m
        for script in SCRIPTS
        if (
            m := re.search(
                rf"^\s*{re.escape(script)} serve --host 0\.0\.0\.0 --port {REST_PORT}\b", command, re.M
            )
        )
    ]
    assert serve, "the head does not start the REST API"
    assert command.index("ray start --head") < serve[0].start()
    assert f"{REST_PORT}/v1/health" in json.dumps(head["healthcheck"]["test"])


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_compose_start_scripts_are_valid_bash():
    _, heads, workers = _compose_nodes()
    for name, service in {**heads, **workers}.items():
        command = service["command"]
        assert command[:2] == ["bash", "-c"], name
        # Compose turns $$ into $ before the shell sees the script.
        script = command[2].replace("$$", "$")
        result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def _compose_binary() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.skipif(
    _compose_binary() is None,
    reason="docker-compose is not installed (Debian: apt-get install -y docker-compose)",
)
def test_docker_compose_config_is_valid(tmp_path: Path):
    binary = _compose_binary()
    assert binary
    # Variables from the caller's shell would override the env file and hide a missing token.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "COMPOSE_"))}
    with_token = tmp_path / "with-token.env"
    with_token.write_text("RAY_AUTH_TOKEN=0123456789abcdef0123456789abcdef\n")
    without_token = tmp_path / "empty.env"
    without_token.write_text("")

    def config(env_file: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*binary, "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )

    ok = config(with_token)
    assert ok.returncode == 0, ok.stderr
    # Token mode needs the same token on every node; a missing one must stop `up`, not start a broken cluster.
    missing = config(without_token)
    assert missing.returncode != 0 and "RAY_AUTH_TOKEN" in missing.stderr

"""The Ray cluster launcher configs pass Ray's own validator, install the project and scale GPU
workers from zero."""

from __future__ import annotations

import re

import pytest

from tests.deploy_files import (
    LAUNCHER,
    SNAPSHOT_ENV,
    load_yaml,
    pin,
)


def _launcher(name: str) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = load_yaml(LAUNCHER / name)
    validate_config(prepare_config(raw))
    return raw


def _run_option_env(config: dict) -> dict[str, str]:
    env = {}
    for option in config["docker"].get("run_options", []):
        m = re.fullmatch(r"(?:--env|-e)[ =](\w+)=(\S+)", option.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env


@pytest.mark.parametrize("name", ["aws.yaml", "local.yaml"])
def test_launcher_config_validates_and_installs_the_project(name: str):
    config = _launcher(name)
    env = _run_option_env(config)
    assert env.get("RAY_AUTH_MODE") == "token"
    assert env.get(SNAPSHOT_ENV)
    # The token file is copied to every node; token mode refuses to start without it.
    assert any(remote.endswith("/.ray/auth_token") for remote in config["file_mounts"])
    project = [remote for remote, local in config["file_mounts"].items() if local in (".", "./")]
    assert len(project) == 1
    setup = config["setup_commands"]
    assert any(re.search(rf"pip install .*{re.escape(project[0])}\s*$", c) for c in setup)
    assert any(f"torch=={pin('torch')}" in c for c in setup)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head_start and "--dashboard-host=0.0.0.0" in head_start


def test_aws_launcher_has_a_gpu_worker_type_from_zero():
    config = _launcher("aws.yaml")
    assert config["provider"]["type"] == "aws"
    docker = config["docker"]
    types = config["available_node_types"]
    gpu_types = {k: v for k, v in types.items() if v.get("resources", {}).get("GPU", 0) >= 1}
    assert gpu_types
    for node_type in gpu_types.values():
        assert node_type["min_workers"] == 0 and node_type["max_workers"] >= 1
        image = node_type.get("docker", {}).get(
            "worker_image", docker.get("worker_image", docker.get("image"))
        )
        assert image.endswith("-gpu")
    head = types[config["head_node_type"]]
    assert head.get("resources", {}).get("GPU", 0) == 0
    assert not docker.get("head_image", docker.get("image")).endswith("-gpu")


def test_local_launcher_is_on_premise():
    provider = _launcher("local.yaml")["provider"]
    assert provider["type"] == "local"
    assert provider["head_ip"] and provider["worker_ips"]
    assert provider["head_ip"] not in provider["worker_ips"]

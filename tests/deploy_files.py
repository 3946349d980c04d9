"""The deployment files and the pins they must agree with, for the deployment tests.

Pins come from pyproject.toml and the installed Ray, never from a copy here, so bumping Ray or Python
without updating the images fails the tests.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERAY = DEPLOY / "kuberay"
LAUNCHER = DEPLOY / "cluster-launcher"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
README = DEPLOY / "README.md"
SERVE_CONFIG = DEPLOY / "serve_config.yaml"

REQUIRED_FILES = [
    COMPOSE,
    DOCKERFILE,
    ROOT / ".dockerignore",
    README,
    SERVE_CONFIG,
    KUBERAY / "raycluster.yaml",
    KUBERAY / "rayjob.yaml",
    KUBERAY / "rayservice.yaml",
    KUBERAY / "snapshots-pvc.yaml",
    LAUNCHER / "aws.yaml",
    LAUNCHER / "local.yaml",
]
YAML_FILES = sorted(DEPLOY.rglob("*.yaml")) + [COMPOSE]
HEAD_PORTS = {6379, 8265, 10001}
REST_PORT = 8000
SNAPSHOT_ENV = "CURRICULUM_SNAPSHOT_DIR"
GPU = "nvidia.com/gpu"

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = set(PYPROJECT["project"]["scripts"])


CONSTRAINTS = (ROOT / ".ci" / "constraints.txt").read_text().splitlines()


def pin(name: str) -> str:
    """The version CI tests (``.ci/constraints.txt``), which pyproject.toml's range must admit."""
    for line in CONSTRAINTS:
        m = re.fullmatch(rf"{name}\s*==\s*(\S+)", line.strip())
        if m:
            ranges = [d for d in PYPROJECT["project"]["dependencies"] if re.match(rf"{name}\b", d)]
            assert ranges, f"pyproject.toml does not depend on {name}"
            spec = SpecifierSet(re.sub(rf"^{name}(\[[^\]]*\])?", "", ranges[0]).strip())
            assert spec.contains(m.group(1)), f"pyproject.toml's {ranges[0]} excludes the tested {m.group(1)}"
            return m.group(1)
    raise AssertionError(f".ci/constraints.txt has no pin for {name}")


@functools.cache
def installed_ray() -> str:
    """The installed Ray, which must satisfy the pin: cluster images must match the client exactly."""
    tested = pin("ray")
    version = importlib.metadata.version("ray")
    assert SpecifierSet(f"=={tested}").contains(version), f"installed ray {version} violates ray=={tested}"
    return version


def python_tag() -> str:
    requires = PYPROJECT["project"]["requires-python"]
    m = re.search(r">=\s*(\d+)\.(\d+)", requires)
    assert m, f"requires-python {requires!r} has no lower bound"
    return f"py{m.group(1)}{m.group(2)}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def kuberay(name: str) -> dict:
    return load_yaml(KUBERAY / name)

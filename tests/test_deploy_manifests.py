"""Deployment files agree with the package and with each other.

Pins come from pyproject.toml and the installed Ray, never from a copy in the tests, so bumping Ray or
Python without updating the images fails here. Nothing starts Ray: the launcher and Serve checks are
Ray's own offline validators.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_files import (
    COMPOSE,
    DOCKERFILE,
    KUBERAY,
    LAUNCHER,
    PYPROJECT,
    README,
    REQUIRED_FILES,
    ROOT,
    YAML_FILES,
    installed_ray,
    kuberay,
    load_yaml,
    pin,
    python_tag,
)


@pytest.fixture(scope="module")
def image_tag() -> str:
    return f"{installed_ray()}-{python_tag()}"


def _tag(image: str) -> str:
    name, sep, tag = image.rpartition(":")
    assert sep and "/" not in tag, f"image {image!r} has no tag"
    return tag


def _images(obj: Any) -> list[str]:
    """Every image named anywhere in a parsed manifest (pod specs, launcher docker sections)."""
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("image", "head_image", "worker_image") and isinstance(value, str):
                found.append(value)
            else:
                found += _images(value)
    elif isinstance(obj, list):
        for item in obj:
            found += _images(item)
    return found


def test_required_files_exist():
    missing = [str(p.relative_to(ROOT)) for p in REQUIRED_FILES if not p.is_file()]
    assert not missing


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path: Path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize(
    "path",
    [
        COMPOSE,
        KUBERAY / "raycluster.yaml",
        KUBERAY / "rayjob.yaml",
        KUBERAY / "rayservice.yaml",
        LAUNCHER / "aws.yaml",
        LAUNCHER / "local.yaml",
    ],
    ids=lambda p: p.name,
)
def test_images_match_ray_and_python_pins(path: Path, image_tag: str):
    images = _images(load_yaml(path))
    assert images, f"{path.name} names no image"
    for image in images:
        assert _tag(image) in (image_tag, f"{image_tag}-gpu"), image
        if image.startswith("rayproject/"):
            assert image.rpartition(":")[0] == "rayproject/ray", image


def test_dockerfile_builds_cpu_and_gpu_variants_from_the_pins(image_tag: str):
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    assert args.get("BASE_IMAGE") == f"rayproject/ray:{image_tag}"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert args.get("TORCH_VERSION") == pin("torch")
    assert args.get("TORCH_INDEX", "").endswith("/whl/cpu")
    assert re.search(r'pip install [^\n]*"torch==\$\{TORCH_VERSION\}" --index-url "\$\{TORCH_INDEX\}"', text)
    # The project is copied in and installed as a package, so the console script lands on PATH.
    copy = re.search(r"^COPY \S* ?\. (\S+)$", text, re.M)
    assert copy and re.search(rf"pip install [^\n]*{re.escape(copy.group(1))}\b", text)
    gpu_base = f"BASE_IMAGE=rayproject/ray:{image_tag}-gpu"
    assert gpu_base in text and gpu_base in README.read_text()


def test_dockerignore_keeps_the_build_inputs_and_drops_secrets():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {".git", ".venv", ".env"} <= patterns
    needed = {"pyproject.toml", "README.md", "scorer_service", "trainers", "deploy"}
    assert not needed & {p.strip("/*") for p in patterns if not p.startswith("!")}


def test_readme_commands_match_the_manifests():
    text = README.read_text()
    cluster = kuberay("raycluster.yaml")["metadata"]["name"]
    service = kuberay("rayservice.yaml")["metadata"]["name"]
    assert f"svc/{cluster}-head-svc" in text
    assert f"svc/{service}-serve-svc" in text
    for path in [
        "deploy/cluster-launcher/aws.yaml",
        "deploy/kuberay/rayjob.yaml",
        "deploy/serve_config.yaml",
    ]:
        assert path in text
    envs = re.findall(r"--runtime-env-json\s+'([^']+)'", text)
    assert envs, "README shows no ray job submit with --runtime-env-json"
    # A runtime_env that installs dependencies must install the project's own pins, nothing else.
    deps = {d for d in PYPROJECT["project"]["dependencies"] if not d.startswith("ray")}
    for raw in envs:
        runtime_env = json.loads(raw)
        assert runtime_env.get("working_dir") == "."
        if "pip" in runtime_env:
            assert set(runtime_env["pip"]) == deps

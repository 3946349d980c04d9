"""Deployment files agree with the package and with each other.

Pins come from pyproject.toml and the installed Ray, never from a copy in this file, so bumping Ray or
Python without updating the images fails here. Nothing starts Ray: the launcher and Serve checks are
Ray's own offline validators.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
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


def _pin(name: str) -> str:
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


@pytest.fixture(scope="module")
def ray_version() -> str:
    """The installed Ray, which must satisfy the pin: cluster images must match the client exactly."""
    pin = _pin("ray")
    version = importlib.metadata.version("ray")
    assert SpecifierSet(f"=={pin}").contains(version), f"installed ray {version} violates ray=={pin}"
    return version


@pytest.fixture(scope="module")
def python_tag() -> str:
    requires = PYPROJECT["project"]["requires-python"]
    m = re.search(r">=\s*(\d+)\.(\d+)", requires)
    assert m, f"requires-python {requires!r} has no lower bound"
    return f"py{m.group(1)}{m.group(2)}"


@pytest.fixture(scope="module")
def image_tag(ray_version: str, python_tag: str) -> str:
    return f"{ray_version}-{python_tag}"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


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


def _size_bytes(text: str | int) -> float:
    if isinstance(text, int):
        return float(text)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)i?b?", str(text).strip().lower())
    assert m, f"unreadable size {text!r}"
    return float(m.group(1)) * 1024 ** " kmg".index(m.group(2) or " ")


# ---------------------------------------------------------------- files and images


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
    images = _images(_load(path))
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
    assert args.get("TORCH_VERSION") == _pin("torch")
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


# ---------------------------------------------------------------- KubeRay


def _kuberay(name: str) -> dict:
    return _load(KUBERAY / name)


def _cluster_spec(name: str) -> dict:
    doc = _kuberay(name)
    assert doc["apiVersion"] == "ray.io/v1"
    kind, key = {
        "raycluster.yaml": ("RayCluster", None),
        "rayjob.yaml": ("RayJob", "rayClusterSpec"),
        "rayservice.yaml": ("RayService", "rayClusterConfig"),
    }[name]
    assert doc["kind"] == kind
    return doc["spec"] if key is None else doc["spec"][key]


def _ray_container(template: dict) -> dict:
    containers = template["spec"]["containers"]
    # KubeRay treats the first container as the Ray container.
    return containers[0]


def _gpu_limit(container: dict) -> int:
    return int(container.get("resources", {}).get("limits", {}).get(GPU, 0))


def _pvc_name() -> str:
    pvc = _kuberay("snapshots-pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim"
    # Every node reads and writes snapshots at once.
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    return pvc["metadata"]["name"]


CLUSTER_FILES = ["raycluster.yaml", "rayjob.yaml", "rayservice.yaml"]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_kuberay_cluster_autoscales_with_token_auth(name: str, ray_version: str):
    spec = _cluster_spec(name)
    assert spec["rayVersion"] == ray_version
    assert spec["enableInTreeAutoscaling"] is True
    options = spec["autoscalerOptions"]
    assert isinstance(options, dict) and int(options["idleTimeoutSeconds"]) > 0
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    for params in [head["rayStartParams"]] + [g["rayStartParams"] for g in spec["workerGroupSpecs"]]:
        # KubeRay rejects non-string rayStartParams values.
        assert all(isinstance(v, str) for v in params.values()), params
    ports = {p["containerPort"] for p in _ray_container(head["template"]).get("ports", [])}
    assert ports >= HEAD_PORTS
    if name != "rayjob.yaml":
        serve = [p for p in _ray_container(head["template"])["ports"] if p["containerPort"] == REST_PORT]
        assert serve and serve[0]["name"] == "serve"


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_kuberay_gpu_group_scales_from_zero(name: str):
    groups = _cluster_spec(name)["workerGroupSpecs"]
    for g in groups:
        assert g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], g["groupName"]
    gpu_groups = [g for g in groups if _gpu_limit(_ray_container(g["template"])) >= 1]
    assert gpu_groups, "no worker group asks for nvidia.com/gpu"
    for g in gpu_groups:
        assert g["minReplicas"] == 0 and g["replicas"] == 0
        assert g["maxReplicas"] >= 4
        assert _ray_container(g["template"])["image"].endswith("-gpu")
    for g in groups:
        if g not in gpu_groups:
            assert not _ray_container(g["template"])["image"].endswith("-gpu"), g["groupName"]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_kuberay_every_pod_shares_the_snapshot_volume(name: str):
    claim = _pvc_name()
    spec = _cluster_spec(name)
    templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    mount_paths, snapshot_dirs = set(), set()
    for template in templates:
        volumes = {
            v["name"]
            for v in template["spec"].get("volumes", [])
            if v.get("persistentVolumeClaim", {}).get("claimName") == claim
        }
        assert volumes, f"a pod in {name} does not mount claim {claim}"
        container = _ray_container(template)
        mounts = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in volumes]
        assert len(mounts) == 1
        mount_paths.add(mounts[0])
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        snapshot_dirs.add(env.get(SNAPSHOT_ENV))
    assert len(mount_paths) == 1 and len(snapshot_dirs) == 1
    (mount,), (snapshots,) = mount_paths, snapshot_dirs
    assert snapshots and (snapshots == mount or snapshots.startswith(mount.rstrip("/") + "/"))


def test_rayjob_runs_the_console_script_on_gpus():
    doc = _kuberay("rayjob.yaml")["spec"]
    assert doc["shutdownAfterJobFinishes"] is True
    assert isinstance(doc["ttlSecondsAfterFinished"], int) and doc["ttlSecondsAfterFinished"] > 0
    argv = shlex.split(doc["entrypoint"])
    assert argv[0] in SCRIPTS and argv[1] == "train"
    assert "--gpu" in argv
    workers = int(argv[argv.index("--workers") + 1])
    assert workers >= 1
    groups = doc["rayClusterSpec"]["workerGroupSpecs"]
    gpu_capacity = sum(g["maxReplicas"] * _gpu_limit(_ray_container(g["template"])) for g in groups)
    assert workers <= gpu_capacity, "the job asks for more GPUs than the cluster can ever have"
    # Ray Train checkpoints must be on storage every node shares.
    mount = _ray_container(doc["rayClusterSpec"]["headGroupSpec"]["template"])["volumeMounts"][0]
    storage = argv[argv.index("--storage-path") + 1]
    assert storage.startswith(mount["mountPath"].rstrip("/") + "/")


# ---------------------------------------------------------------- Serve


def _serve_configs() -> dict[str, dict]:
    service = _kuberay("rayservice.yaml")["spec"]["serveConfigV2"]
    assert isinstance(service, str), "serveConfigV2 must be a YAML string"
    return {"serve_config.yaml": _load(SERVE_CONFIG), "rayservice.yaml": yaml.safe_load(service)}


def test_serve_configs_validate_and_point_at_the_app_module():
    from ray.serve.schema import ServeDeploySchema

    import_paths = set()
    for name, config in _serve_configs().items():
        schema = ServeDeploySchema.model_validate(config)
        assert len(schema.applications) == 1, name
        app = schema.applications[0]
        assert app.route_prefix == "/"
        import_paths.add(app.import_path)
    assert len(import_paths) == 1
    (import_path,) = import_paths
    module, _, attr = import_path.partition(":")
    source = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert source.is_file(), f"{import_path}: {source.relative_to(ROOT)} does not exist"
    tree = ast.parse(source.read_text())
    bound = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bound.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {a.asname or a.name for a in node.names}
    assert attr in bound, f"{source.relative_to(ROOT)} defines no top-level {attr!r}"


def test_serve_config_listens_on_the_rest_port():
    http = _load(SERVE_CONFIG)["http_options"]
    assert http["port"] == REST_PORT and http["host"] == "0.0.0.0"


# ---------------------------------------------------------------- cluster launcher


def _launcher(name: str) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = _load(LAUNCHER / name)
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
    assert any(f"torch=={_pin('torch')}" in c for c in setup)
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


# ---------------------------------------------------------------- docker-compose


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def _compose_nodes() -> tuple[dict, dict[str, dict], dict[str, dict]]:
    compose = _load(COMPOSE)
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


# ---------------------------------------------------------------- README


def test_readme_commands_match_the_manifests():
    text = README.read_text()
    cluster = _kuberay("raycluster.yaml")["metadata"]["name"]
    service = _kuberay("rayservice.yaml")["metadata"]["name"]
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

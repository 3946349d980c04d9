"""The KubeRay manifests and the Serve configs: autoscaling with token auth, GPU groups from zero, one
snapshot volume for every pod, and Serve apps that point at the REST module."""

from __future__ import annotations

import ast
import shlex

import pytest
import yaml

from tests.deploy_files import (
    GPU,
    HEAD_PORTS,
    REST_PORT,
    ROOT,
    SCRIPTS,
    SERVE_CONFIG,
    SNAPSHOT_ENV,
    installed_ray,
    kuberay,
    load_yaml,
)


def _cluster_spec(name: str) -> dict:
    doc = kuberay(name)
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
    pvc = kuberay("snapshots-pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim"
    # Every node reads and writes snapshots at once.
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    return pvc["metadata"]["name"]


CLUSTER_FILES = ["raycluster.yaml", "rayjob.yaml", "rayservice.yaml"]


@pytest.mark.parametrize("name", CLUSTER_FILES)
def test_kuberay_cluster_autoscales_with_token_auth(name: str):
    spec = _cluster_spec(name)
    assert spec["rayVersion"] == installed_ray()
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
    doc = kuberay("rayjob.yaml")["spec"]
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
    service = kuberay("rayservice.yaml")["spec"]["serveConfigV2"]
    assert isinstance(service, str), "serveConfigV2 must be a YAML string"
    return {"serve_config.yaml": load_yaml(SERVE_CONFIG), "rayservice.yaml": yaml.safe_load(service)}


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
    http = load_yaml(SERVE_CONFIG)["http_options"]
    assert http["port"] == REST_PORT and http["host"] == "0.0.0.0"

"""Importing curriculum prints nothing: every trainer process imports it, and third-party import noise
(faiss announcing which CPU build it loads) would repeat in every worker's log."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "code",
    [
        "import curriculum; curriculum.RoundSampler",
        # A Ray worker logs INFO records: faiss's loader would print its search for a CPU build.
        "import logging, sys; logging.basicConfig(level=logging.INFO); import curriculum; "
        "curriculum.RoundSampler; curriculum.Recorder; curriculum.StoreConfig; curriculum.create_run; "
        "assert 'faiss' not in sys.modules, 'faiss is loaded only where k-means cells are built'",
    ],
)
def test_importing_curriculum_prints_nothing_to_stderr(code):
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_trainer_side_loads_nothing_of_the_store_but_its_interface_errors_wire_schema_and_answer_types():
    code = (
        "import sys, curriculum\n"
        "curriculum.RoundSampler, curriculum.Recorder, curriculum.WithIds, curriculum.HttpEndpoint\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('scorer_service'))))\n"
        "print('ray' in sys.modules)\n"
    )
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    loaded, ray_loaded = done.stdout.splitlines()
    store = set(loaded.split()) - {"scorer_service", "scorer_service.core", "scorer_service.core.errors"}
    assert all(m.startswith("scorer_service.core.wire") for m in store), loaded
    assert "scorer_service.core.wire.batch" in store  # the test sees what it claims to see
    assert ray_loaded == "False"

"""Run isolation from the command line: a second `curriculum train` with a live run's name is refused and
changes nothing; the first run finishes with its scores intact and leaves no temporary directory."""

import getpass
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from scorer_service.ray.actor import get_store

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def train(gcs: str, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [BIN / "curriculum", "train", "--address", gcs, "--run", "iso", "--workers", "2", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        **kw,
    )


def test_a_second_run_of_a_live_name_is_refused_and_the_first_finishes_intact(ray_session, tmp_path):
    gcs = ray.get_runtime_context().gcs_address
    temp = Path(os.environ["TMPDIR"])
    temp_before = set(os.listdir(temp))
    first = train(
        gcs,
        *("--epochs", "10", "--warm-start", "1", "--cycle", "1", "--method", "dihcl-greedy"),
        *("--snapshot-dir", str(tmp_path / "snap"), "--storage-path", str(tmp_path / "ckpt")),
        *("--keep-checkpoints", "1"),
    )
    lines = []
    deadline = time.time() + 300
    while time.time() < deadline and not any(x.startswith("round   1/10") for x in lines):
        lines.append(first.stdout.readline())
    assert any(x.startswith("round   1/10") for x in lines), "".join(lines) + first.stderr.read()[-3000:]

    second = train(gcs, "--epochs", "9", "--snapshot-dir", str(tmp_path / "other"))
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2, err[-3000:]
    message = err.strip().splitlines()[-1]
    assert message.startswith("curriculum: error: run 'iso' already exists and is in progress ("), message
    advice = (
        "/10 rounds); attach to it (curriculum train --resume iso, curriculum.attach_run) "
        "or replace it (curriculum train --replace, create_run(..., replace=True))"
    )
    assert message.endswith(advice), message

    out, err = first.communicate(timeout=400)
    assert first.returncode == 0, out[-3000:] + err[-3000:]
    assert "done: final test accuracy" in out
    # The first run's scores are its own: every sample seen exactly as often as the rounds selected it.
    store = get_store("iso")
    info = ray.get(store.info.remote())
    assert info.rounds_completed == 10 and info.config["epochs"] == 10 and info.rejected == 0
    seen = ray.get(store.column.remote("seen"))
    expected = np.zeros(info.n, dtype=np.int64)
    for r in range(10):
        expected[ray.get(store.round_subset.remote(r, 0, info.n)).ids] += 1
    np.testing.assert_array_equal(seen, expected)
    assert info.ingested == expected.sum()

    finished = train(gcs, "--epochs", "10")
    _, err = finished.communicate(timeout=120)
    assert finished.returncode == 2 and "run 'iso' already exists and is finished (10/10 rounds)" in err

    # Nothing of the run is left in the temporary directory: no checkpoint staging directory, nothing
    # else; its checkpoints are where they belong, as many as asked to keep.
    # (torch keeps a per-user compile cache there, shared by every run and kept on purpose.)
    assert set(os.listdir(temp)) - temp_before - {f"torchinductor_{getpass.getuser()}"} == set()
    (train_dir,) = (tmp_path / "ckpt").iterdir()
    assert len([d for d in train_dir.glob("checkpoint_*") if d.is_dir()]) == 1
    ray.kill(store)

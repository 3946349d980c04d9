"""`curriculum train --resume`: a run stopped by Ctrl-C continues from its checkpoint and store snapshot."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_stopped_run_resumes_where_it_stopped_and_refuses_a_mismatch(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    common = ["--snapshot-dir", str(tmp_path / "snap"), "--storage-path", str(tmp_path / "ckpt")]
    first = subprocess.Popen(
        [
            BIN / "curriculum",
            "train",
            "--workers",
            "2",
            "--epochs",
            "8",
            "--warm-start",
            "2",
            "--cycle",
            "2",
            "--run",
            "resumable",
            "--method",
            "random",
            *common,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    lines = []
    deadline = time.time() + 300
    while time.time() < deadline:
        line = first.stdout.readline()
        lines.append(line)
        if line.startswith("round   3/8"):
            first.send_signal(signal.SIGINT)  # the user's Ctrl-C after round 3
            break
    first.wait(timeout=120)
    assert any(x.startswith("round   3/8") for x in lines), "".join(lines)[-3000:]

    resumed = subprocess.run(
        [BIN / "curriculum", "train", "--workers", "2", "--resume", "resumable", *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=REPO,
    )
    out = resumed.stdout
    assert resumed.returncode == 0, out[-3000:] + resumed.stderr[-3000:]
    done = int(out.split("resuming run resumable after round ")[1].split("/")[0])
    assert done >= 3
    rounds = [int(x.split()[1].split("/")[0]) for x in out.splitlines() if x.startswith("round ")]
    assert rounds == list(range(done + 1, 9))  # exactly the missing rounds, then done
    assert "done: final test accuracy" in out

    # Without model checkpoints the store's round has nothing to match: refuse, clearly.
    shutil.rmtree(tmp_path / "ckpt")
    refused = subprocess.run(
        [BIN / "curriculum", "train", "--workers", "2", "--resume", "resumable", *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert refused.returncode == 2 and "refusing to resume" in refused.stderr

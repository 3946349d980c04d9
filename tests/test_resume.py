"""`curriculum train --resume` where the cluster keeps its state on an object store: a local S3 server
(moto) holds the snapshots and the model checkpoints; a run stopped by Ctrl-C trains exactly its
missing rounds. Checkpoint lookup by exact run name, on a path and on an S3 URI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyarrow import fs as pafs

from tests.helpers import free_ports
from trainers.resume import CHECKPOINT_META, checkpoint_rounds

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
BUCKET = "curriculum"


@pytest.fixture(scope="module")
def s3():
    """A local S3 API on loopback with one bucket; yields the environment that points clients at it
    (no credentials or region lookups leave this machine)."""
    from moto.server import ThreadedMotoServer

    port = free_ports(1)[0]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    try:
        yield env, fs
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def _checkpoint(fs: pafs.FileSystem, path: str, round_: int | None) -> None:
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/state.pt") as f:
        f.write(b"model")
    if round_ is not None:
        with fs.open_output_stream(f"{path}/{CHECKPOINT_META}") as f:
            f.write(json.dumps({"run": "r", "round": round_, "step": 7}).encode())


@pytest.mark.parametrize("where", ["path", "s3"])
def test_checkpoints_are_found_by_exact_run_name_and_their_json(where, s3, tmp_path):
    if where == "path":
        fs, base, storage = pafs.LocalFileSystem(), str(tmp_path), str(tmp_path)
    else:
        fs, base, storage = s3[1], f"{BUCKET}/lookup", f"s3://{BUCKET}/lookup"
    _checkpoint(fs, f"{base}/r-inc/checkpoint_2026-01-01_00-00-01", 2)
    _checkpoint(fs, f"{base}/r-inc/checkpoint_2026-01-01_00-00-02", 3)
    _checkpoint(fs, f"{base}/r-inc/checkpoint_2026-01-01_00-00-03", None)  # being written: no JSON yet
    _checkpoint(fs, f"{base}/r-inc-x/checkpoint_2026-01-01_00-00-04", 9)  # another run, a longer name
    _checkpoint(fs, f"{base}/r-x-inc/checkpoint_2026-01-01_00-00-05", 8)
    scheme = "s3://" if where == "s3" else ""
    assert checkpoint_rounds(storage, "r-inc") == {
        2: f"{scheme}{base}/r-inc/checkpoint_2026-01-01_00-00-01",
        3: f"{scheme}{base}/r-inc/checkpoint_2026-01-01_00-00-02",
    }
    assert checkpoint_rounds(storage, "nope") == {}


@pytest.mark.slow
def test_a_run_stopped_on_s3_resumes_exactly_its_missing_rounds(s3):
    s3_env, fs = s3
    env = {**os.environ, **s3_env, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    common = ["--snapshot-dir", f"s3://{BUCKET}/snap", "--storage-path", f"s3://{BUCKET}/ckpt"]
    first = subprocess.Popen(
        [
            *(BIN / "curriculum", "train", "--workers", "2", "--epochs", "8", "--warm-start", "2"),
            *("--cycle", "2", "--run", "resumable", "--method", "random", "--keep-checkpoints", "1", *common),
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
    (incarnation,) = [i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/snap/resumable"))]

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
    assert rounds == list(range(done + 1, 9)), out + resumed.stderr[-5000:]  # exactly the missing rounds
    assert "done: final test accuracy" in out
    # Both attempts are one Ray Train run (its name: run and incarnation), keeping one checkpoint.
    runs = [i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/ckpt"))]
    assert runs == [f"resumable-{incarnation}"]
    assert list(checkpoint_rounds(f"s3://{BUCKET}/ckpt", runs[0])) == [7]

    # Without model checkpoints the store's round has nothing to match: refuse, clearly.
    fs.delete_dir(f"{BUCKET}/ckpt")
    refused = subprocess.run(
        [BIN / "curriculum", "train", "--workers", "2", "--resume", "resumable", *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert refused.returncode == 2 and "refusing to resume" in refused.stderr, refused.stderr[-2000:]

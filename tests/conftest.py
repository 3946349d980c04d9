import contextlib
import os
import shutil
import signal
import tempfile

# Before Ray is imported anywhere: no token file, no usage reporting, no stray cluster.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)
# Runs started by tests keep their snapshots and checkpoints out of the user's home, and their temporary
# files (the session's Ray workers inherit TMPDIR) in a directory of this session, so a test can tell
# what a run left behind. Ray's own session directory stays where it is (its socket paths are short).
_tmp = tempfile.mkdtemp(prefix="curriculum-tests-")
os.environ.setdefault("CURRICULUM_SNAPSHOT_DIR", os.path.join(_tmp, "snapshots"))
os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
os.makedirs(os.path.join(_tmp, "tmp"))
os.environ["TMPDIR"] = tempfile.tempdir = os.path.join(_tmp, "tmp")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole session (starting Ray costs about 5 s)."""
    import ray

    from scorer_service.ray.actor import NAMESPACE

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            namespace=NAMESPACE,
            object_store_memory=256 << 20,
        )
    yield ray
    ray.shutdown()


def _stragglers() -> list[int]:
    """Processes this session started that still run: they inherited its TMPDIR (Ray workers that a
    shut-down local cluster left behind, servers a failed test did not stop)."""
    if not os.path.isdir("/proc"):
        return []
    mark = f"TMPDIR={os.environ['TMPDIR']}".encode()
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as f:
            if mark in f.read().split(b"\0"):
                found.append(pid)
    return found


def pytest_unconfigure(config):
    for pid in _stragglers():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(_tmp, ignore_errors=True)

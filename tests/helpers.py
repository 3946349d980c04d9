"""Small builders shared by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import numpy as np

from scorer_service.config import StoreConfig


def batch(ids, loss, correct, step, lr, *, round_=0, rank=0, writer="w", seq=0) -> dict:
    """A byproduct batch dict; scalars ``step``/``lr`` are broadcast over the samples."""
    ids = np.asarray(ids, dtype=np.int64)
    m = len(ids)
    return {
        "sample_id": ids,
        "loss": np.asarray(loss, dtype=np.float32),
        "correct": np.asarray(correct, dtype=bool),
        "step": np.broadcast_to(np.asarray(step, dtype=np.int64), (m,)).copy(),
        "lr": np.broadcast_to(np.asarray(lr, dtype=np.float64), (m,)).copy(),
        "round": round_,
        "rank": rank,
        "writer": writer,
        "seq": seq,
    }


def diversity_config(n: int, **kw) -> StoreConfig:
    """A store that warms up for one round, then picks the hardest half (dihcl-greedy) and keeps
    a diverse 0.4 of it: round 1 is the first selection with the diversity term."""
    base = {
        "n": n,
        "epochs": 3,
        "method": "dihcl-greedy",
        "warm_start": 1,
        "cycle_length": 1,
        "budget_start": 0.5,
        "diversity": "fl",
    }
    return StoreConfig.create(**(base | kw))


def reference_dih(observations, n: int, metric: str, gamma: float) -> np.ndarray:
    """DIHCL Eqs. 1-2 written sample by sample, independent of the store's vectorized code.

    ``observations``: (sample, step, loss, correct, lr_of_step) in arrival order; the learning
    rate of every step is taken from the observations themselves.
    """
    lr_of = {}
    for _, step, _, _, lr in observations:
        lr_of[step] = lr
    r = [1.0] * n
    last = {}
    for i, step, loss, correct, lr in observations:
        if metric == "loss":
            r[i] = gamma * (loss / lr) + (1 - gamma) * r[i]
        elif i in last:
            prev_step, prev_loss, prev_correct = last[i]
            since = sum(lr_of[s] for s in range(prev_step, step + 1))
            change = abs(loss - prev_loss) if metric == "dloss" else float(correct != prev_correct)
            r[i] = gamma * (change / since) + (1 - gamma) * r[i]
        last[i] = (step, loss, correct)
    return np.array(r)


# What must never reach a client: Ray's task text, a process id, an actor id, terminal escapes.
LEAKS = ("ray::", "pid=", "actor_id", "Traceback", "\x1b")


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, (leak, text[:500])


def hostile_requests(run: str, n: int) -> list[tuple[str, dict | None, int, str]]:
    """(path, query, status, what the one-line answer says) for requests meant to break the API:
    negative and 20-digit ids, dunder metric names, unicode, escapes and path traversal in run names."""
    return [
        (f"/v1/runs/{run}/samples/-1", None, 404, f"sample -1 does not exist (n = {n})"),
        (
            f"/v1/runs/{run}/samples/-99999999999999999999",
            None,
            404,
            f"sample ids must be integers in [0, {n})",
        ),
        (
            f"/v1/runs/{run}/samples/99999999999999999999",
            None,
            404,
            f"sample ids must be integers in [0, {n})",
        ),
        (f"/v1/runs/{run}/samples", {"ids": "1,-5"}, 404, "sample -5 does not exist"),
        (f"/v1/runs/{run}/samples", {"ids": "1,99999999999999999999"}, 404, "sample ids must be integers"),
        (f"/v1/runs/{run}/samples", {"ids": "1,x"}, 422, "query parameter ids: String should match pattern"),
        (f"/v1/runs/{run}/top", {"metric": "__class__"}, 422, "query parameter metric: Input should be"),
        (f"/v1/runs/{run}/top", {"metric": "__dict__", "k": 5}, 422, "query parameter metric"),
        (f"/v1/runs/{run}/histogram", {"metric": "dih\x1b[31m"}, 422, "query parameter metric"),
        (
            f"/v1/runs/{run}/rounds/99999999999999999999/subset",
            None,
            404,
            "round 99999999999999999999 was never",
        ),
        (f"/v1/runs/{run}/rounds/-1/subset", None, 422, "path parameter round_: Input should be greater"),
        (f"/v1/runs/{run}/export", {"format": "../../etc/passwd"}, 422, "query parameter format"),
        ("/v1/runs/..%2F..%2Fetc%2Fpasswd", None, 404, "Not Found"),  # no route: "/" splits the path
        ("/v1/runs/..%5C..%5Cetc%5Cpasswd", None, 404, "no store for run '..\\\\..\\\\etc\\\\passwd'"),
        ("/v1/runs/%E2%98%83%F0%9F%92%A5/top", None, 404, "no store for run '\u2603\U0001f4a5'"),
        ("/v1/runs/%1B%5B31mred/samples/1", None, 404, "no store for run '\\x1b[31mred'"),
        ("/v1/runs/" + "x" * 201, None, 422, "path parameter run: String should have at most 200"),
        (f"/v1/runs/{run}/nope", None, 404, "Not Found"),
    ]


def free_ports(k: int) -> list[int]:
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:  # gone, or not ours to read
        return b""


def cluster_processes(temp: str) -> list[int]:
    """Every process of the cluster marked by ``temp`` (its temp dir): those whose command line names
    it, those that carry it in their environment (every process a ``ray start`` spawned inherits it,
    including those reparented to init, such as ``ray.util.client.server``), and their descendants.

    Descendants too: a raylet's helper processes and workers retitle themselves (``ray::...``), so
    their command lines no longer name the temp dir. Never this process or its ancestors.
    """
    table = subprocess.run(["ps", "-eww", "-o", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    parent_of: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    roots = []
    marker = b"=" + temp.encode() + b"\0"
    for line in table.splitlines():
        pid, ppid, *args = line.split(None, 2)
        parent_of[int(pid)] = int(ppid)
        children.setdefault(int(ppid), []).append(int(pid))
        if (args and temp in args[0]) or marker in _environ(int(pid)):
            roots.append(int(pid))
    spared, pid = set(), os.getpid()
    while pid > 1:
        spared.add(pid)
        pid = parent_of.get(pid, 1)
    found, stack = set(), [p for p in roots if p not in spared]
    while stack:
        pid = stack.pop()
        if pid not in found and pid not in spared:
            found.add(pid)
            stack.extend(children.get(pid, []))
    return sorted(found)


def kill_cluster(temp: str, timeout: float = 30.0) -> list[int]:
    """SIGKILL every process of the cluster marked by ``temp`` (:func:`cluster_processes`) until none
    is left (the helpers outlive a killed raylet by up to a minute and a half otherwise); returns
    the pids signalled. Start the cluster with ``temp`` in its environment (:func:`cluster_env`)."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (pids := cluster_processes(temp)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.update(pids)
        time.sleep(0.2)
    return sorted(killed)


def cluster_env(temp: str, **extra: str) -> dict[str, str]:
    """The environment to start a test cluster in: this one, marked by its temp dir ``temp``."""
    env = {**os.environ, "CURRICULUM_CLUSTER_TEMP": temp, "RAY_AUTH_MODE": "disabled", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


@contextlib.contextmanager
def uvicorn_server(app) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield url
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")

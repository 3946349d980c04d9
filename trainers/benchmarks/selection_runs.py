"""One selection run in a fresh interpreter, and what that process measures about itself (peak RSS,
CPU time): each run's memory is then its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_now_mib() -> float:
    return _status_mib("VmRSS")


def peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
    return _status_mib("VmHWM")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def spawn(spec: dict, timeout: float) -> dict:
    """Run one worker in a fresh interpreter; its peak RSS is then its own."""
    cmd = [sys.executable, "-m", "trainers.benchmarks.selection", "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout > {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0][:160]}"}
    return json.loads(lines[-1])

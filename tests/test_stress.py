"""Every answer of the REST API comes from one state of the store, under load: 4 clients on every read
route and export while 2 writers ingest and the store selects, rewinds and snapshots, for over a minute
(tests/cases/stress.py, in its own process with its own Ray)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"

pytestmark = [pytest.mark.slow, pytest.mark.stress]


def test_reads_agree_with_themselves_while_the_store_changes():
    proc = subprocess.run(
        [sys.executable, str(CASES / "stress.py"), "--seconds", "65"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(proc.stdout[-4000:])
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert proc.returncode == 0 and result["errors"] == 0 and result["disagreements"] == 0, proc.stdout[
        -4000:
    ]
    assert result["writer_error"] is None and result["seconds"] >= 60
    # It did change under the reads: rounds, lost attempts rewound, snapshots, ingests.
    assert result["rounds_recorded"] >= 5 and result["rewinds"] >= 1 and result["snapshots_taken"] >= 10
    assert result["ingested"] > 0
    assert set(result["by_route"]) == {
        *("info", "runs", "health", "sample", "samples", "top"),
        *("histogram", "rounds", "subset", "export", "metrics"),
    }
    assert min(result["by_route"].values()) >= 5

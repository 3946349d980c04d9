"""Snapshots, the write-ahead log, exactly-once ingest and rewinding, on the pure store."""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from scorer_service.config import StoreConfig
from scorer_service.core.errors import InvalidQuery
from scorer_service.store import HardnessStore
from tests.helpers import batch


def config(tmp_path, **kw) -> StoreConfig:
    base = {
        "n": 20,
        "epochs": 6,
        "run": "dur",
        "method": "dihcl-exp",
        "metric": "dloss",
        "warm_start": 1,
        "cycle_length": 1,
        "snapshot_dir": str(tmp_path),
        "incarnation": "a",
    }
    return StoreConfig(**{**base, **kw})


def drive(s: HardnessStore, rounds: range, seq0: int = 0, partial: bool = False) -> int:
    """Run rounds of 2 ranks through the store like trainers do; returns the next sequence number."""
    seq, step = seq0, s.ingestor.lr_log.num_steps
    rng = np.random.default_rng(seq0)
    for r in rounds:
        shards = [s.subset(r, rank, 2) for rank in (0, 1)]
        for rank, ids in enumerate(shards):
            s.ingest(
                batch(
                    ids,
                    rng.exponential(size=len(ids)),
                    rng.random(len(ids)) < 0.5,
                    step=step,
                    lr=0.1 / (r + 1),
                    round_=r,
                    rank=rank,
                    writer=f"w{rank}",
                    seq=seq,
                )
            )
            seq += 1
        step += 1
        if partial and r == rounds[-1]:
            break
        s.record_round(r, {"test_accuracy": r / 10})
    return seq


def reopen(s: HardnessStore, root: Path) -> HardnessStore:
    """What a restarted store actor finds: a new store over ``s``'s files as they are now, copied to
    ``root`` (``s`` goes on with its own, as if the restart had happened on another machine)."""
    s.journal.settle()
    shutil.copytree(s.config.snapshot_dir, root)
    return HardnessStore(replace(s.config, snapshot_dir=str(root)))


def assert_same(a: HardnessStore, b: HardnessStore) -> None:
    for name, col in a.state.columns.items():
        np.testing.assert_array_equal(b.state.columns[name], col, err_msg=name)
    for name, col in a.state.matrices.items():
        np.testing.assert_array_equal(b.state.matrices[name], col, err_msg=name)
    np.testing.assert_array_equal(a.ingestor.lr_log.cum, b.ingestor.lr_log.cum)
    # selection time is measured again when the log is replayed; everything else must be identical
    strip = lambda rounds: [{k: v for k, v in r.items() if k != "selection_ms"} for r in rounds]  # noqa: E731
    assert strip(a.round_summaries()) == strip(b.round_summaries())
    assert (
        a.ingestor.counters == b.ingestor.counters
        and a.ingestor.applied.state() == b.ingestor.applied.state()
    )


def test_restart_restores_snapshot_plus_log_exactly(tmp_path):
    s = HardnessStore(config(tmp_path))
    seq = drive(s, range(0, 3))
    drive(s, range(3, 4), seq0=seq, partial=True)  # acknowledged after the last snapshot: only in the log
    restarted = reopen(s, tmp_path / "restarted")
    assert_same(s, restarted)
    # and the restarted store keeps going identically
    drive(s, range(4, 5), seq0=100)
    drive(restarted, range(4, 5), seq0=100)
    assert_same(s, restarted)


def test_torn_last_log_record_is_ignored(tmp_path):
    s = HardnessStore(config(tmp_path))
    drive(s, range(0, 2))
    before = reopen(s, tmp_path / "before")
    s.ingest(batch([0, 1], [1.0, 2.0], [True, False], step=2, lr=0.05, round_=2, writer="late", seq=0))
    log = sorted(tmp_path.glob("dur/a/wal-*.log"))[-1]
    data = log.read_bytes()
    log.write_bytes(data[:-7])  # the process died in the middle of the write
    restarted = reopen(s, tmp_path / "restarted")
    assert_same(before, restarted)
    # the sender never got an acknowledgement, retries, and the batch is applied exactly once
    restarted.ingest(
        batch([0, 1], [1.0, 2.0], [True, False], step=2, lr=0.05, round_=2, writer="late", seq=0)
    )
    assert_same(s, restarted)


def test_retried_and_reordered_sends_apply_once(tmp_path):
    s = HardnessStore(config(tmp_path))
    b0 = batch([0], [1.0], [True], step=0, lr=0.1, writer="w", seq=0)
    b1 = batch([1], [1.0], [True], step=0, lr=0.1, writer="w", seq=1)
    assert s.ingest(b1)["duplicate"] is False
    assert s.ingest(b0)["duplicate"] is False  # overtaken by seq 1, still applied
    assert s.ingest(b0)["duplicate"] is True and s.ingest(b1)["duplicate"] is True
    restarted = reopen(s, tmp_path / "restarted")
    assert restarted.ingest(b0)["duplicate"] is True and restarted.ingestor.counters["ingested"] == 2


def test_rewind_returns_to_the_end_of_a_round(tmp_path):
    s = HardnessStore(config(tmp_path))
    seq = drive(s, range(0, 2))
    at_round_1 = HardnessStore(config(tmp_path, run="copy"))
    drive(at_round_1, range(0, 2))
    drive(s, range(2, 4), seq0=seq, partial=True)  # a lost attempt: round 2 done, round 3 half done
    assert s.rewind(1) is True
    assert_same(at_round_1, s)
    assert len(reopen(s, tmp_path / "restarted").round_summaries()) == 2
    assert s.rewind(3) is True and len(s.planner.rounds) == 2  # not ahead of round 3: nothing to do
    short = HardnessStore(config(tmp_path, run="short", keep_snapshots=1))
    drive(short, range(0, 4))
    with pytest.raises(InvalidQuery, match="no snapshot of the end of round 1"):
        short.rewind(1)


def test_fresh_incarnation_starts_empty_and_memory_store_cannot_rewind(tmp_path):
    s = HardnessStore(config(tmp_path))
    drive(s, range(0, 2))
    fresh = HardnessStore(config(tmp_path, incarnation="b"))
    assert fresh.ingestor.counters["ingested"] == 0 and fresh.planner.rounds == {}
    memory = HardnessStore(config(tmp_path, snapshot_dir=None))
    drive(memory, range(0, 2))
    assert memory.rewind(0) is False and len(memory.planner.rounds) == 2


def test_old_snapshots_are_dropped(tmp_path):
    s = HardnessStore(config(tmp_path, keep_snapshots=2, epochs=8))
    drive(s, range(0, 6))
    s.journal.settle()
    snaps = sorted(p.name for p in tmp_path.glob("dur/a/snap-*.json"))
    assert len(snaps) <= 3 and len(list(tmp_path.glob("dur/a/wal-*.log"))) <= 3


def test_rewind_to_the_beginning_needs_no_snapshot_and_is_a_no_op_when_not_ahead(tmp_path):
    stores = []
    for snapshot_dir in (str(tmp_path), None):
        s = HardnessStore(
            config(tmp_path, snapshot_dir=snapshot_dir, keep_snapshots=1, run=f"b{snapshot_dir is None}")
        )
        drive(s, range(0, 4))
        assert s.rewind(3) is True and len(s.planner.rounds) == 4  # not ahead: nothing to forget
        assert s.rewind(-1) is True  # the initial snapshot was dropped long ago; not needed
        assert (
            s.planner.rounds == {}
            and s.ingestor.counters["ingested"] == 0
            and s.ingestor.lr_log.num_steps == 0
        )
        assert np.all(s.state.dih == 1.0) and np.all(s.state.seen == 0)
        drive(s, range(0, 1))  # and a new attempt starts cleanly at step 0
        assert s.ingestor.counters["ingested"] == 20
        stores.append(s)
    assert reopen(stores[0], tmp_path / "restarted").ingestor.counters["ingested"] == 20


def test_snapshots_of_another_configuration_are_refused(tmp_path):
    s = HardnessStore(config(tmp_path))
    drive(s, range(0, 1))
    s.journal.settle()
    with pytest.raises(ValueError, match="different n"):
        HardnessStore(config(tmp_path, n=30))

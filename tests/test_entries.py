"""Write-ahead log entries and selection steps: typed values that read back as the values written."""

from __future__ import annotations

import numpy as np
import pytest

from scorer_service.core.wire.interface import is_read_only
from scorer_service.durability import entries
from scorer_service.durability.wal import encode, read_records
from scorer_service.selection import steps
from scorer_service.selection.protocol import SelectionShard
from scorer_service.selection.session import RoundPlan
from scorer_service.shard import StoreShard


def _through_log(entry: entries.Entry, tmp_path) -> entries.Entry:
    path = tmp_path / "wal.log"
    path.write_bytes(encode(*entries.encode(entry)))
    with open(path, "rb") as f:
        (record,) = list(read_records(f))
    return entries.decode(record.header, record.columns or {})


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for name, value in vars(a).items():
        other = vars(b)[name]
        if isinstance(value, dict):
            assert value.keys() == other.keys()
            for k in value:
                np.testing.assert_array_equal(value[k], other[k])
        elif hasattr(value, "__dataclass_fields__"):
            _same(value, other)
        else:
            np.testing.assert_array_equal(np.asarray(value), np.asarray(other))


CASES = [
    entries.IngestEntry(1, 0, "w0", 3, 0.25, {"sample_id": np.arange(3), "loss": np.ones(3, np.float32)}),
    entries.IngestEntry(1, 1, "w1", 4, 0.5, {"sample_id": np.arange(2)}, ([7, 8], [0.1, 0.05])),
    entries.StepEntry(2, steps.Open(RoundPlan(2, "dihcl-exp", 20, 0, 1, {"beta": 1.0}))),
    entries.StepEntry(2, steps.Pool(True, 15)),
    entries.StepEntry(2, steps.Stage(1, {"dih_sum": 3.5})),
    entries.StepEntry(2, steps.Keys({"dih_sum": 3.5}, (0.0, 2.0), 4)),
    entries.StepEntry(2, steps.Cut(12345, 2)),
    entries.StepEntry(2, steps.Diverse(5, True, [0, 2, 1])),
    entries.StepEntry(2, steps.Choose(np.array([3, 9]), np.array([2.0, 1.0]))),
    entries.AdoptEntry(2, {"round": 2, "counts": [3, 3], "trim": [-1, -1]}),
    entries.ReshardEntry(2, 3, [5, 6], [2, 2, 2]),
    entries.RecordEntry(2, {"test_accuracy": 0.5}, {"lo": 0.0, "hi": 1.0}),
    entries.RejectedEntry(),
    entries.DuplicatesEntry(),
]


@pytest.mark.parametrize("entry", CASES, ids=lambda e: type(e).__name__)
def test_an_entry_reads_back_as_written(entry, tmp_path):
    _same(entry, _through_log(entry, tmp_path))


def test_a_step_logged_with_statistics_named_name_op_reads_back_typed():
    # How logs written with "name:op" statistics hold a keys step.
    header = {
        "kind": "step",
        "round": 4,
        "step": "keys",
        "payload": {"stats": {"dih:sum": 1.5}, "dih_range": [0, 2]},
    }
    entry = entries.decode(header, {})
    assert entry == entries.StepEntry(4, steps.Keys({"dih_sum": 1.5}, (0, 2)))


def test_unknown_kinds_and_steps_are_refused():
    with pytest.raises(ValueError, match="record kind"):
        entries.decode({"kind": "nonsense"}, {})
    with pytest.raises(ValueError, match="selection step"):
        steps.decode("nonsense", {})


def test_the_shard_methods_that_only_read_are_marked():
    read = {"rows", "columns", "metric_part", "noise_part", "keeps", "round_state", "rank_ids", "progress"}
    assert all(is_read_only(getattr(StoreShard, m)) for m in read)
    assert is_read_only(SelectionShard.keeps) and is_read_only(SelectionShard.noise_part)
    changes = ("ingest", "select_step", "adopt", "reshard", "record", "snapshot", "rewind")
    assert not any(is_read_only(getattr(StoreShard, m)) for m in changes)

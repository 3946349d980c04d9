"""The store's pure core: DIH update rules, validated ingest, selection rounds and shards."""

import numpy as np
import pytest

from scorer_service.config import StoreConfig
from scorer_service.core.errors import InvalidBatch, InvalidQuery, NotFound
from scorer_service.core.rounds import rank_slice
from scorer_service.core.wire.batch import Ingested
from scorer_service.selection.schedule import Budget, Cycles, cyclic_cosine_lr
from scorer_service.store import HardnessStore
from tests.helpers import batch, reference_dih


def make_store(n=6, metric="loss", method="dihcl-greedy", **kw) -> HardnessStore:
    return HardnessStore(
        StoreConfig.create(n=n, epochs=kw.pop("epochs", 10), metric=metric, method=method, **kw)
    )


def test_dih_loss_trace_by_hand():
    s = make_store(metric="loss", gamma=0.5)
    s.ingest(batch([0, 1], [2.0, 4.0], [True, False], step=0, lr=0.5, seq=0))
    # r = 0.5 * loss / lr + 0.5 * r0 with r0 = 1
    assert s.state.dih[:3].tolist() == [0.5 * 4.0 + 0.5, 0.5 * 8.0 + 0.5, 1.0]
    s.ingest(batch([0], [1.0], [True], step=1, lr=0.25, seq=1))
    assert s.state.dih[0] == pytest.approx(0.5 * 4.0 + 0.5 * 2.5)


def test_dih_dloss_and_flip_normalize_by_lr_since_last_seen():
    for metric in ("dloss", "flip"):
        s = make_store(metric=metric, gamma=0.5)
        s.ingest(batch([0, 1], [2.0, 2.0], [True, True], step=0, lr=0.1, seq=0))
        assert s.state.dih[:2].tolist() == [1.0, 1.0]  # first observation: nothing to compare
        s.ingest(batch([2], [1.0], [True], step=1, lr=0.2, seq=1))
        s.ingest(batch([0], [1.5], [False], step=2, lr=0.3, seq=2))
        since = 0.1 + 0.2 + 0.3  # steps 0..2 inclusive
        change = 0.5 if metric == "dloss" else 1.0
        assert s.state.dih[0] == pytest.approx(0.5 * change / since + 0.5)
        assert s.state.dih[1] == 1.0
    assert s.state.flips[0] == 1 and s.state.beta_alpha[0] == 3.0 and s.state.beta_beta[0] == 2.0


@pytest.mark.parametrize("metric", ["loss", "dloss", "flip"])
def test_dih_matches_sample_by_sample_reference(metric):
    rng = np.random.default_rng(1)
    n, s = 50, make_store(n=50, metric=metric, gamma=0.8)
    obs = []
    for step in range(40):
        ids = rng.choice(n, size=12, replace=False)
        loss = rng.exponential(size=12).astype(np.float32)
        correct = rng.random(12) < 0.6
        lr = float(0.01 + 0.1 * rng.random())
        s.ingest(batch(ids, loss, correct, step=step, lr=lr, seq=step))
        obs += [(int(i), step, float(x), bool(c), lr) for i, x, c in zip(ids, loss, correct, strict=True)]
    np.testing.assert_allclose(s.state.dih, reference_dih(obs, n, metric, 0.8), rtol=1e-9)


def test_observations_of_one_step_may_arrive_from_several_ranks():
    s = make_store(metric="dloss")
    s.ingest(batch([0], [1.0], [True], step=0, lr=0.1, writer="a", seq=0))
    s.ingest(batch([1], [1.0], [True], step=0, lr=0.1, writer="b", seq=0))
    s.ingest(batch([1], [1.0], [True], step=1, lr=0.1, writer="b", seq=1))
    s.ingest(batch([0], [1.0], [True], step=1, lr=0.1, writer="a", seq=1))
    assert s.ingestor.lr_log.num_steps == 2 and s.ingestor.counters["ingested"] == 4


MALFORMED = {
    "id out of range": (lambda b: b.update(sample_id=np.array([0, 6])), "out of range"),
    "negative id": (lambda b: b.update(sample_id=np.array([-1, 2])), "out of range"),
    "duplicate id": (lambda b: b.update(sample_id=np.array([3, 3])), "duplicates"),
    "NaN loss": (lambda b: b.update(loss=np.array([np.nan, 1.0], np.float32)), "NaN"),
    "inf loss": (lambda b: b.update(loss=np.array([np.inf, 1.0], np.float32)), "NaN or infinite"),
    "negative loss": (lambda b: b.update(loss=np.array([-1.0, 1.0], np.float32)), "negative"),
    "length mismatch": (lambda b: b.update(loss=np.array([1.0], np.float32)), "lengths differ"),
    "wrong dtype loss": (lambda b: b.update(loss=np.array(["a", "b"])), "dtype"),
    "wrong dtype ids": (lambda b: b.update(sample_id=np.array([0.0, 1.0])), "dtype"),
    "list instead of array": (lambda b: b.update(loss=[1.0, 2.0]), "numpy array"),
    "2-d column": (lambda b: b.update(loss=np.ones((2, 1), np.float32)), "1-dimensional"),
    "negative lr": (lambda b: b.update(lr=np.full(2, -0.1)), "lr must be finite and >= 0"),
    "nan lr": (lambda b: b.update(lr=np.full(2, np.nan)), "lr must be finite and >= 0"),
    "missing column": (lambda b: b.pop("correct"), "missing correct"),
    "unknown column": (lambda b: b.update(extra=np.ones(2)), "unknown columns extra"),
    "negative rank": (lambda b: b.update(rank=-1), "rank"),
    "empty writer": (lambda b: b.update(writer=""), "writer"),
    "lr disagrees with log": (lambda b: b.update(lr=np.full(2, 0.5)), "step 1 was logged"),
    "gap in steps": (lambda b: b.update(step=np.full(2, 9)), "step 3 was never reported"),
    "two lrs one step": (lambda b: b.update(lr=np.array([0.1, 0.2])), "two learning rates"),
    "stale observation": (lambda b: b.update(step=np.array([0, 0]), lr=np.full(2, 0.1)), "already observed"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_batch_is_rejected_and_changes_nothing(case):
    s = make_store(metric="dloss")
    s.ingest(batch([0, 1, 2], [1.0, 2.0, 3.0], [True, False, True], step=0, lr=0.1, seq=0))
    s.ingest(batch([0, 1, 2], [1.0, 2.0, 3.0], [True, False, True], step=1, lr=0.2, seq=1))
    s.ingest(batch([4], [1.0], [True], step=2, lr=0.2, seq=2))
    before, steps, counters = s.state.copy(), s.ingestor.lr_log.cum.copy(), dict(s.ingestor.counters)
    bad = batch([1, 2], [1.0, 2.0], [True, True], step=1, lr=0.2, seq=3)
    mutate, message = MALFORMED[case]
    mutate(bad)
    with pytest.raises(InvalidBatch, match=message):
        s.ingest(bad)
    for name, col in before.columns.items():
        np.testing.assert_array_equal(s.state.columns[name], col, err_msg=name)
    np.testing.assert_array_equal(s.ingestor.lr_log.cum, steps)
    assert s.ingestor.counters == {**counters, "rejected": counters["rejected"] + 1}


def test_retried_batch_is_applied_once():
    s = make_store()
    b = batch([0, 1], [1.0, 1.0], [True, True], step=0, lr=0.1, writer="rank0", seq=0)
    assert s.ingest(b) == Ingested(applied=2, duplicate=False, lag_s=0.0)
    dih = s.state.dih.copy()
    assert s.ingest(b) == Ingested(applied=0, duplicate=True, lag_s=0.0)
    np.testing.assert_array_equal(s.state.dih, dih)
    assert s.state.seen[0] == 1 and s.ingestor.counters["duplicates"] == 1


def test_warm_start_then_budget_and_equal_shards():
    n, world = 101, 2
    s = make_store(
        n=n, epochs=12, warm_start=2, cycle_length=3, budget_start=0.5, budget_factor=0.5, budget_floor=0.2
    )
    r0 = [s.subset(0, r, world) for r in range(world)]
    r1 = [s.subset(1, r, world) for r in range(world)]
    # Warm start: all data minus the n mod world trimmed; the trimmed one leads the next round.
    assert len(np.union1d(*r0)) == 100 and len(np.union1d(np.union1d(*r0), np.union1d(*r1))) == n
    sizes = [len(np.concatenate([s.subset(t, r, world) for r in range(world)])) for t in range(2, 12)]
    # cycle 1 (rounds 2-4): 0.5 n -> 50; cycle 2: 0.25 n -> 25 -> 24 after trimming to 2 ranks; cycle 3: floor
    assert sizes == [50] * 3 + [24] * 3 + [20] * 3 + [20]
    for t in range(12):
        a, b = s.subset(t, 0, world), s.subset(t, 1, world)
        assert len(a) == len(b) and not set(a) & set(b)
        np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), np.sort(s.rounds[t].ids))


def test_selection_is_cached_and_reshards_for_a_new_world_size():
    s = make_store(n=60, epochs=8, warm_start=1, cycle_length=2)
    first = s.subset(3, 0, 2).copy()
    np.testing.assert_array_equal(s.subset(3, 0, 2), first)
    three = [s.subset(3, r, 3) for r in range(3)]
    assert len({len(x) for x in three}) == 1
    assert set(np.concatenate(three)) <= set(s.rounds[3].selected.tolist())


def test_rank_shards_follow_global_positions_across_parts_and_reject_bad_ranks():
    # Ids 10..16 are positions 0..6 of a selection held in two parts (3 ids, then 4): position p goes to
    # rank p mod 3 whichever part holds it.
    parts = [(np.array([10, 11, 12]), 0), (np.array([13, 14, 15, 16]), 3)]
    ranks = [np.concatenate([rank_slice(ids, r, 3, offset) for ids, offset in parts]) for r in range(3)]
    assert [r.tolist() for r in ranks] == [[10, 13, 16], [11, 14], [12, 15]]
    with pytest.raises(ValueError, match="rank"):
        rank_slice(np.arange(4), 2, 2)


def test_schedule_cycles_budget_and_lr():
    c = Cycles(epochs=20, warm_start=5, cycle_length=5)
    assert c.starts == (0, 5, 10, 15)
    assert [c.selection_cycle(r) for r in (0, 4, 5, 9, 10, 19)] == [0, 0, 1, 1, 2, 3]
    b = Budget()  # paper: 0.85 per cycle down to 0.2
    assert [round(b.fraction(e), 4) for e in range(0, 12)][:4] == [1.0, 0.85, 0.7225, 0.6141]
    assert b.fraction(30) == 0.2
    assert cyclic_cosine_lr(c, 5, 0.0, 0.1, 0.001) == pytest.approx(0.1 * 0.85)
    assert cyclic_cosine_lr(c, 9, 1.0, 0.1, 0.001) == pytest.approx(0.001 * 0.85)
    with pytest.raises(ValueError, match="boundaries"):
        Cycles(epochs=10, boundaries=(0, 5, 5))


def test_queries():
    s = make_store(n=5, metric="loss")
    s.ingest(batch([0, 1, 2], [0.1, 3.0, 1.0], [True, False, True], step=0, lr=1.0, seq=0))
    top = s.top("dih", 2, "desc")
    assert [t.id for t in top] == [1, 2]
    assert [t.id for t in s.top("last_loss", 5, "asc")] == [0, 2, 1]  # unseen samples have no loss
    h = s.histogram("last_loss", 3)
    assert sum(h.counts) == 3 and h.missing == 2
    row = s.samples([1])[0]
    assert row.id == 1 and row.last_loss == pytest.approx(3.0) and row.seen == 1
    assert s.samples([4])[0].last_loss is None
    with pytest.raises(NotFound):
        s.samples([5])
    with pytest.raises(InvalidQuery):
        s.top("nope", 1, "desc")
    with pytest.raises(NotFound):
        s.round_subset(3)


def test_bad_store_config_is_refused():
    with pytest.raises(ValueError, match="unknown selector"):
        StoreConfig(n=10, epochs=5, method="magic")
    with pytest.raises(ValueError, match="unknown metric"):
        StoreConfig(n=10, epochs=5, metric="vibes")
    with pytest.raises(ValueError, match="floor"):
        StoreConfig.create(n=10, epochs=5, budget_floor=0.0)


def test_read_only_and_strided_columns_use_the_compiled_passes_as_they_are():
    """Ray hands the store read-only arrays; any layout goes through the same compiled signatures."""
    from scorer_service.core.scan import scan_batch
    from scorer_service.core.updates import _apply_records

    s = make_store(metric="loss", gamma=0.5)
    b = batch([0, 1, 2], [2.0, 4.0, 1.0], [True, False, True], step=0, lr=0.5)
    b["loss"] = np.repeat(b["loss"], 2)[::2]  # a strided view
    for v in b.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    compiled = len(scan_batch.signatures), len(_apply_records.signatures)
    assert s.ingest(b) == Ingested(applied=3, duplicate=False, lag_s=0.0)
    assert s.state.dih[:4].tolist() == [0.5 * 4.0 + 0.5, 0.5 * 8.0 + 0.5, 0.5 * 2.0 + 0.5, 1.0]
    assert (len(scan_batch.signatures), len(_apply_records.signatures)) == compiled

"""A store split into shards by sample id answers and selects exactly as one store (in one process)."""

import shutil
from dataclasses import replace

import numpy as np
import pytest

from scorer_service.config import StoreConfig
from scorer_service.core.errors import InvalidBatch
from scorer_service.store import HardnessStore
from scorer_service.submodular import build_objective, mean_pairwise_distance, rescale_scores
from tests.helpers import batch


def stores(n: int, shards: tuple[int, ...] = (1, 4), **kw) -> list[HardnessStore]:
    base = {"n": n, "epochs": 6, "warm_start": 1, "cycle_length": 1, "seed": 7, "budget_start": 0.5}
    return [HardnessStore(StoreConfig.create(**(base | kw), store_shards=s)) for s in shards]


def feed(s: HardnessStore, round_: int = 0, parts: int = 10, seed: int = 1) -> None:
    """The same byproducts for every store: exponential losses (a block of exact ties), in parts."""
    n = s.config.n
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n)
    loss = rng.exponential(size=n).astype(np.float32)
    loss[: n // 100] = 1.0
    step0 = s.info().steps
    for i, c in enumerate(np.array_split(np.arange(n), parts)):
        b = batch(
            ids[c], loss[c], loss[c] > 1, step=step0 + i, lr=0.1 + 0.01 * i, round_=round_, seq=step0 + i
        )
        b["label"] = ids[c] % 10
        b["predicted"] = np.where(loss[c] > 2, (ids[c] + 1) % 10, ids[c] % 10)
        s.ingest(b)


def same_rounds(a: HardnessStore, b: HardnessStore) -> None:
    strip = lambda rounds: [replace(r, selection_ms=0.0) for r in rounds]  # noqa: E731
    assert strip(a.round_summaries()) == strip(b.round_summaries())


@pytest.mark.parametrize("method", ["dihcl-greedy", "spl", "dihcl-rand", "dihcl-exp", "random", "dihcl-beta"])
def test_four_shards_select_exactly_what_one_store_selects_at_a_million_samples(method):
    """Top-k (greedy, SPL) and weighted sampling (Rand, Exp: exponential races; random; Thompson) with a fixed
    seed: the same ids for every rank, the same importance weights, the same round records."""
    one, four = stores(1_000_000, method=method, metric="flip" if method == "dihcl-beta" else "loss")
    for s in (one, four):
        s.subset(0, 0, 3)
        feed(s)
    for rank in range(3):
        np.testing.assert_array_equal(one.subset(1, rank, 3), four.subset(1, rank, 3))
    assert sum(len(one.subset(1, r, 3)) for r in range(3)) == 499_998  # 0.5 n, trimmed to 3 ranks
    np.testing.assert_array_equal(one.column("importance"), four.column("importance"))
    same_rounds(one, four)


def test_a_new_world_size_recuts_the_same_selection_alike():
    one, four = stores(10_001, method="dihcl-rand")
    for s in (one, four):
        s.subset(0, 0, 2)
        feed(s)
    for world in (3, 2, 4, 7):
        for rank in range(world):
            np.testing.assert_array_equal(one.subset(1, rank, world), four.subset(1, rank, world))
    same_rounds(one, four)
    three = [four.subset(1, r, 3) for r in range(3)]
    assert len({len(x) for x in three}) == 1 and not set(three[0]) & set(three[1])


def test_left_out_samples_lead_the_next_warm_start_round_on_every_shard():
    (s,) = stores(1003, shards=(4,), warm_start=2)
    first = np.concatenate([s.subset(0, r, 4) for r in range(4)])
    second = np.concatenate([s.subset(1, r, 4) for r in range(4)])
    assert len(first) == len(second) == 1000 and len(np.union1d(first, second)) == 1003


def test_queries_over_shards_answer_what_one_store_answers():
    one, three = stores(5000, shards=(1, 3), method="dihcl-greedy")
    for s in (one, three):
        s.subset(0, 0, 2)
        feed(s)
        s.record_round(0, {"test_accuracy": 0.5})
        s.subset(1, 0, 2)
    for metric in ("dih", "last_loss", "noise", "seen", "sigma"):
        for order in ("asc", "desc"):
            assert one.top(metric, 37, order) == three.top(metric, 37, order)
        assert one.histogram(metric, 13) == three.histogram(metric, 13)
    ids = [4999, 0, 1666, 1667, 3333, 12]
    assert one.samples(ids) == three.samples(ids)
    assert one.label_issues(0.5, 50) == three.label_issues(0.5, 50)
    for offset, limit in ((0, 10), (1600, 200), (2490, 100), (0, 5000)):
        assert one.round_subset(1, offset, limit) == three.round_subset(1, offset, limit)
    for name, col in one.columns().items():
        np.testing.assert_array_equal(three.column(name), col, err_msg=name)
    np.testing.assert_array_equal(
        one.parameters(np.array(ids))["log_sigma"], three.parameters(np.array(ids))["log_sigma"]
    )
    a, b = one.info(), three.info()
    for key in ("n", "rounds", "rounds_completed", "steps", "ingested", "batches", "rejected", "duplicates"):
        assert getattr(a, key) == getattr(b, key), key


def test_a_batch_is_checked_whole_before_any_shard_sees_part_of_it():
    one, four = stores(100)
    good = batch([1, 30, 60, 90], [1.0] * 4, [True] * 4, step=0, lr=0.1, seq=0)
    for s in (one, four):
        s.ingest(good)
    for bad, message in (
        (
            batch([1, 30, 60, 100], [1.0] * 4, [True] * 4, step=1, lr=0.1, seq=1),
            r"sample_id 100 is out of range",
        ),
        (batch([1, 30, 30, 90], [1.0] * 4, [True] * 4, step=1, lr=0.1, seq=1), "duplicates"),
        (batch([1, 30, 60, 90], [1.0, 1.0, np.nan, 1.0], [True] * 4, step=1, lr=0.1, seq=1), "NaN"),
        (batch([1, 30, 60, 90], [1.0] * 4, [True] * 4, step=1, lr=-0.1, seq=1), "lr must be finite"),
    ):
        before = four.columns()
        for s in (one, four):
            with pytest.raises(InvalidBatch, match=message):
                s.ingest(bad)
        for name, col in four.columns().items():
            np.testing.assert_array_equal(col, before[name], err_msg=name)
    # A part without samples still carries the batch's learning rates: every shard logs step 1.
    four.ingest(batch([2, 3], [1.0, 1.0], [True, True], step=1, lr=0.3, seq=2))
    assert [sh.ingestor.lr_log.num_steps for sh in four.shards.shards] == [2, 2, 2, 2]
    np.testing.assert_array_equal(four.shards.shards[3].ingestor.lr_log.lr, [0.1, 0.3])
    assert four.info().batches == one.info().batches + 1 == 2


def test_a_store_of_shards_restarts_from_each_shards_own_files(tmp_path):
    cfg = StoreConfig.create(
        n=300, epochs=5, warm_start=1, cycle_length=1, method="dihcl-exp", store_shards=3, run="sh",
        snapshot_dir=str(tmp_path / "a"), incarnation="x",
    )  # fmt: skip
    s = HardnessStore(cfg)
    for r in range(3):
        s.subset(r, 0, 2)
        feed(s, round_=r, parts=3, seed=r)
        if r < 2:
            s.record_round(r, {"test_accuracy": 0.1 * r})
    for shard in s.shards.shards:
        shard.journal.settle()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b" / "sh" / "x").glob("shard-*")) == ["shard-001", "shard-002"]
    again = HardnessStore(cfg.with_settings(snapshot_dir=str(tmp_path / "b")))
    for name, col in s.columns().items():
        np.testing.assert_array_equal(again.column(name), col, err_msg=name)
    same_rounds(s, again)
    assert again.rewind(0) and s.rewind(0)
    for name, col in s.columns().items():
        np.testing.assert_array_equal(again.column(name), col, err_msg=name)


def test_greedi_over_four_shards_is_within_one_percent_of_one_stores_greedy():
    """The diversity term keeps 40 % of the hardest half: per-shard stochastic greedy, then one greedy
    over the union of the shards' picks (GreeDi), against one stochastic greedy over all candidates,
    both scored by the objective over every candidate."""
    n = 8000
    one, four = stores(n, method="dihcl-greedy", diversity="fl", embedding_dim=8)
    rng = np.random.default_rng(3)
    centers = rng.normal(scale=4.0, size=(20, 8))
    emb = (centers[rng.integers(0, 20, n)] + rng.normal(size=(n, 8))).astype(np.float16)
    loss = rng.random(n).astype(np.float32) + 0.5
    for s in (one, four):
        s.subset(0, 0, 1)
        b = batch(np.arange(n), loss, np.ones(n, bool), step=0, lr=0.1, seq=0)
        b["embedding"] = emb
        s.ingest(b)
    picks = [np.concatenate([s.subset(1, 0, 1)]) for s in (one, four)]
    assert len(picks[0]) == len(picks[1]) == 1600
    assert four.round_summaries()[1].details["diversity_merged"]
    dih = one.column("dih")
    candidates = np.sort(np.argsort(-dih, kind="stable")[: n // 2])
    assert set(picks[1]) <= set(candidates)
    x = emb[candidates].astype(np.float32)
    sigma = mean_pairwise_distance(x, np.random.default_rng(0))
    f = build_objective(
        "fl", x, rescale_scores(dih[candidates]), 1600, 1.0, sigma=sigma, rng=np.random.default_rng(0)
    )
    value = [f.evaluate(np.searchsorted(candidates, p)) for p in picks]
    assert value[1] >= 0.99 * value[0], value


def test_the_automatic_shard_count_follows_n_and_the_smallest_nodes_memory():
    from scorer_service.sizing import auto_shards, bytes_per_sample

    cfg = StoreConfig.create(n=100_000_000, epochs=3, store_shards=0)
    assert bytes_per_sample(cfg) == 104
    # 10.4 GB of records; half of the smallest node's 8 GiB per shard: three shards.
    assert auto_shards(cfg, [64 * 2**30, 8 * 2**30]) == 3
    assert auto_shards(replace(cfg, n=1000), [8 * 2**30]) == 1
    assert auto_shards(replace(cfg, n=5), []) == 1
    with pytest.raises(ValueError, match="store_shards must be in"):
        StoreConfig.create(n=3, epochs=3, store_shards=4)

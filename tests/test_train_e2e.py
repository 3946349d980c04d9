"""A real 2-worker TorchTrainer run against the real store actor."""

from dataclasses import replace

import numpy as np
import pytest
import ray

from scorer_service.ray.actor import create_store
from scorer_service.store import HardnessStore
from tests.helpers import reference_dih
from trainers.datasets import load_dataset
from trainers.driver import run_training
from trainers.train_config import TrainConfig


class TapStore(HardnessStore):
    """The real store, also keeping every applied batch so a test can recompute the scores."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.tap = []

    def ingest(self, data):
        out = super().ingest(data)
        if out.applied:
            self.tap.append(
                {k: data[k] for k in ("sample_id", "loss", "correct", "step", "lr", "round", "rank")}
            )
        return out

    def tapped(self):
        return self.tap


@pytest.fixture(scope="module")
def run(ray_session):
    cfg = TrainConfig.create(
        # dihcl-rand: no importance weights, so DIH is exactly Eqs. 1-2 of the observations.
        run="e2e",
        method="dihcl-rand",
        metric="dloss",
        epochs=6,
        warm_start=2,
        cycle_length=2,
        workers=2,
        budget_start=0.5,
        seed=3,
    )
    n = load_dataset(cfg.dataset).n
    store = create_store(cfg.store_config(n), store_cls=TapStore)
    lines = []
    summary = run_training(cfg, store=store, out=lines.append)
    yield cfg, n, store, summary, lines, ray.get(store.tapped.remote())
    ray.kill(store)


def observations(tap):
    return [
        (int(i), int(s), float(x), bool(c), float(lr))
        for b in tap
        for i, s, x, c, lr in zip(b["sample_id"], b["step"], b["loss"], b["correct"], b["lr"], strict=True)
    ]


def test_run_finishes_with_progress_and_accuracy(run):
    cfg, n, _, summary, lines, _ = run
    assert summary["rounds"] == cfg.epochs
    assert sum(line.startswith("round ") for line in lines) == cfg.epochs
    assert lines[-1].startswith("done: final test accuracy")
    assert summary["final_test_accuracy"] > 0.5  # chance is 0.1
    assert summary["ingested"] == summary["sample_passes"]


def test_every_sample_ingested_during_warm_start(run):
    _, n, _, _, _, tap = run
    warm = np.concatenate([b["sample_id"] for b in tap if b["round"] < 2])
    assert np.array_equal(np.unique(warm), np.arange(n))


def test_rank_shards_are_disjoint_and_cover_the_subset(run):
    cfg, n, store, _, _, tap = run
    budget, cycles = cfg.store_config(n).selection_budget, cfg.store_config(n).cycles
    for r in range(2, cfg.epochs):
        subset = np.array(ray.get(store.round_subset.remote(r, 0, n)).ids)
        k = budget.size(cycles.selection_cycle(r), n)
        assert len(subset) == k - k % 2 and len(subset) < n
        trained = {
            rank: np.concatenate([b["sample_id"] for b in tap if b["round"] == r and b["rank"] == rank])
            for rank in (0, 1)
        }
        assert len(trained[0]) == len(trained[1]) == len(subset) // 2
        assert not set(trained[0].tolist()) & set(trained[1].tolist())
        assert np.array_equal(np.sort(np.concatenate([trained[0], trained[1]])), np.sort(subset))
        for rank in (0, 1):
            shard = ray.get(store.subset.remote(r, rank, 2))
            assert set(shard.tolist()) == set(trained[rank].tolist())


@pytest.mark.parametrize("metric", ["loss", "dloss", "flip"])
def test_dih_equals_the_sample_by_sample_trace(run, metric):
    cfg, n, store, _, _, tap = run
    expected = reference_dih(observations(tap), n, metric, cfg.gamma)
    if metric == cfg.metric:  # the live actor's own scores
        actual = ray.get(store.column.remote("dih"))
    else:  # the same training trace replayed into a store scoring by another metric
        replay = HardnessStore(replace(cfg.store_config(n), metric=metric))
        for seq, b in enumerate(tap):
            replay.ingest(
                {
                    **{k: b[k] for k in ("sample_id", "loss", "correct", "step", "lr")},
                    "loss": b["loss"].astype(np.float32),
                    "round": b["round"],
                    "rank": b["rank"],
                    "writer": "replay",
                    "seq": seq,
                }
            )
        actual = replay.state.dih
    np.testing.assert_allclose(actual, expected, rtol=1e-9)
    assert np.count_nonzero(actual != 1.0) > n // 2  # the trace really moved the scores

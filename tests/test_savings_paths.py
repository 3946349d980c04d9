"""The trainer's side of the savings: loss weights in the loop, plain training with no store, and
InfoBatch end to end, through Ray Train's local mode."""

from __future__ import annotations

import pytest

from scorer_service.core.wire.answers import RoundSummary
from trainers.driver import run_training
from trainers.train_config import TrainConfig

BASE = {"dataset": "digits", "epochs": 4, "warm_start": 1, "cycle_length": 1, "workers": 0}


@pytest.fixture
def train(ray_session, tmp_path):
    def go(run: str, **settings):
        cfg = TrainConfig.create(run=run, storage_path=str(tmp_path / "ckpt"), **(BASE | settings))
        rounds: list[RoundSummary] = []
        summary = run_training(cfg, out=lambda _: None, on_round=lambda s, _store: rounds.append(s))
        return summary, rounds

    return go


def test_plain_training_is_full_data_through_the_store_without_the_store(train):
    plain, _ = train("plain-digits", plain=True)
    full, rounds = train("full-digits", method="full")
    # One process, the same order of the same samples: the very same model, round by round.
    assert [r["test_accuracy"] for r in plain["round_metrics"]] == [
        r.metrics["test_accuracy"] for r in rounds
    ]
    assert plain["sample_passes"] == full["sample_passes"] == 4 * 1437
    assert all(r["ended_s"] > r["started_s"] for r in plain["round_metrics"])


def test_infobatch_trains_on_fewer_samples_with_weighted_losses_and_learns(train):
    summary, rounds = train("infobatch-digits", method="infobatch", epochs=6)
    sizes = [r.size for r in rounds]
    assert sizes[0] == 1437 and all(s < 1437 for s in sizes[1:5]) and sizes[5] == 1437  # anneals
    assert summary["final_test_accuracy"] > 0.85


def test_plain_training_refuses_what_needs_a_store():
    with pytest.raises(ValueError, match="Data Parameters and LeRaC need one"):
        TrainConfig.create(plain=True, data_params="class")

"""Label-noise estimates from the byproducts, the label-issues report, and --denoise."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score

from scorer_service.config import StoreConfig
from scorer_service.core.label_noise import noise_probability
from scorer_service.store import HardnessStore
from scorer_service.web.app import build_app
from scorer_service.web.directory import LocalDirectory
from tests.helpers import batch


def test_the_mixture_separates_a_planted_high_loss_group():
    rng = np.random.default_rng(3)
    noisy = rng.random(2000) < 0.3
    loss = np.where(noisy, rng.normal(1.6, 0.3, 2000), rng.gamma(2.0, 0.1, 2000)).clip(0)
    seen = np.ones(2000, dtype=np.int32)
    seen[:5] = 0
    p = noise_probability(loss.astype(np.float32), seen)
    assert np.isnan(p[:5]).all()
    assert roc_auc_score(noisy[5:], p[5:]) > 0.99
    assert ((p[5:] > 0.5) == noisy[5:]).mean() > 0.97
    assert (noise_probability(np.ones(10, np.float32), np.ones(10)) == 0).all()  # no spread, no noise


def planted_store(denoise: bool = False) -> tuple[HardnessStore, np.ndarray]:
    """Three rounds in which the planted ids keep a high loss and a wrong prediction."""
    n = 200
    noisy = np.zeros(n, dtype=bool)
    noisy[np.random.default_rng(0).choice(n, 40, replace=False)] = True
    s = HardnessStore(
        StoreConfig.create(
            n=n, epochs=5, run="noise", method="dihcl-greedy", warm_start=2, cycle_length=1, denoise=denoise
        )
    )
    rng = np.random.default_rng(1)
    for r in range(3):
        ids = np.concatenate([s.subset(r, 0, 1)])
        loss = np.where(noisy[ids], rng.uniform(1.5, 3.0, ids.size), rng.uniform(0.0, 0.4, ids.size))
        b = batch(ids, loss, ~noisy[ids], step=r, lr=0.1, round_=r, seq=r)
        b["label"] = (ids % 10).astype(np.int64)
        b["predicted"] = np.where(noisy[ids], (ids + 1) % 10, ids % 10).astype(np.int64)
        s.ingest(b)
        s.record_round(r, {"test_accuracy": 0.5})
    return s, noisy


def test_label_issues_rank_the_planted_labels_first():
    s, noisy = planted_store()
    client = TestClient(build_app(LocalDirectory({"noise": s})))
    issues = client.get("/v1/runs/noise/label-issues", params={"threshold": 0.5, "limit": 1000}).json()
    flagged = np.array([i["id"] for i in issues])
    assert set(flagged) == set(np.flatnonzero(noisy))
    assert all(i["label"] == i["id"] % 10 and i["predicted"] == (i["id"] + 1) % 10 for i in issues)
    noise = np.array(
        [
            row["noise"]
            for row in client.get(
                "/v1/runs/noise/samples", params={"ids": ",".join(map(str, range(200)))}
            ).json()
        ]
    )
    assert roc_auc_score(noisy, noise) >= 0.95
    top = client.get("/v1/runs/noise/top", params={"metric": "noise", "k": 40}).json()
    assert {t["id"] for t in top} == set(np.flatnonzero(noisy))
    bad = client.get("/v1/runs/noise/label-issues", params={"threshold": 1.5})
    assert bad.status_code == 422


def test_denoise_keeps_the_planted_labels_out_of_later_subsets():
    plain, noisy = planted_store(denoise=False)
    cleaned, _ = planted_store(denoise=True)
    for store in (plain, cleaned):
        store.subset(3, 0, 1)
    # dihcl-greedy picks the hardest: without denoise, the high-loss planted labels first of all.
    assert noisy[plain.round_subset(3, 0, 200).ids].sum() == 40
    assert noisy[cleaned.round_subset(3, 0, 200).ids].sum() == 0
    # Round 2, the first after the warm start, decides that the labels look noisy: 40 of the 200
    # samples were never predicted as labeled; round 3 reads the decision from round 2's record.
    assert cleaned.round_summaries()[2].details["noise_never_correct_share"] == 0.2
    assert cleaned.round_summaries()[3].details == {
        "noise_labels_noisy": True,
        "noise_recheck": False,
        "noise_suspects": 40,
        "noise_excluded_share": 0.2,
    }


def test_denoise_settings_are_checked():
    with pytest.raises(ValueError, match="noise_threshold must be in"):
        StoreConfig.create(n=10, noise_threshold=1.0)


def denoising_store(run: str, epochs: int, cycle_length: int) -> tuple[HardnessStore, np.ndarray]:
    """A dihcl-greedy store of 200 with --denoise after a 2-round warm start; its first 40 ids planted."""
    planted = np.zeros(200, dtype=bool)
    planted[:40] = True
    config = StoreConfig.create(
        n=200,
        epochs=epochs,
        run=run,
        method="dihcl-greedy",
        warm_start=2,
        cycle_length=cycle_length,
        denoise=True,
    )
    return HardnessStore(config), planted


def test_denoise_leaves_the_pool_whole_when_labels_do_not_look_noisy():
    # Hard but correctly labeled samples: a high loss, and the model gets them right now and then.
    s, hard = denoising_store("clean", epochs=5, cycle_length=1)
    rng = np.random.default_rng(2)
    for r in range(3):
        ids = s.subset(r, 0, 1)
        loss = np.where(hard[ids], rng.uniform(1.5, 3.0, ids.size), rng.uniform(0.0, 0.4, ids.size))
        correct = ~hard[ids] | ((ids + r) % 2 == 0)  # the hard ones right every other round
        s.ingest(batch(ids, loss, correct, step=r, lr=0.1, round_=r, seq=r))
        s.record_round(r, {"test_accuracy": 0.5})
    s.subset(3, 0, 1)
    decided = s.round_summaries()[2].details
    assert decided["noise_labels_noisy"] is False and decided["noise_never_correct_share"] == 0.0
    assert decided["noise_suspects"] > 0  # the mixture alone would have left hard ones out
    assert s.round_summaries()[3].details["noise_excluded_share"] == 0.0
    assert hard[s.round_subset(3, 0, 200).ids].sum() == 40  # dihcl-greedy keeps the hard ones


def test_denoise_lets_suspects_back_in_the_last_round_of_each_cycle_to_observe_them_again():
    s, noisy = denoising_store("recheck", epochs=7, cycle_length=2)
    rng = np.random.default_rng(4)
    planted_in = {}
    for r in range(7):
        ids = s.subset(r, 0, 1)
        planted_in[r] = int(noisy[ids].sum())
        # From round 3 on the model gets ten of the planted ids right: hard, not mislabeled.
        right = noisy[ids] & (ids < 10) & (r >= 3)
        loss = np.where(noisy[ids] & ~right, rng.uniform(1.5, 3.0, ids.size), rng.uniform(0.0, 0.4, ids.size))
        s.ingest(batch(ids, loss, ~noisy[ids] | right, step=r, lr=0.1, round_=r, seq=r))
        s.record_round(r, {"test_accuracy": 0.5})
    details = {r.round: r.details for r in s.round_summaries()}
    # Cycles [2, 3], [4, 5], [6]: rounds 3 and 5 are rechecks; 6, the run's last, is not.
    assert [details[r].get("noise_recheck") for r in range(2, 7)] == [False, True, False, True, False]
    assert planted_in[2] == 0 and planted_in[3] == 40  # dihcl-greedy takes the hardest when let
    assert planted_in[4] == 10  # observed right in round 3: no longer suspects
    assert details[4]["noise_suspects"] == 30
    assert details[6]["noise_suspects"] == 30 and planted_in[6] <= 10

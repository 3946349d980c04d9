"""The references (full data, InfoBatch), the unbiased option and annealing, through a real store."""

from __future__ import annotations

import numpy as np
import pytest

from scorer_service.config import StoreConfig
from scorer_service.store import HardnessStore
from tests.helpers import batch


def _train(store: HardnessStore, round_: int, loss_of, *, world: int = 1) -> np.ndarray:
    """Fetch round ``round_`` for every rank, observe ``loss_of(ids)``, record the round; the ids."""
    ids = np.sort(np.concatenate([store.subset(round_, r, world) for r in range(world)]))
    store.ingest(batch(ids, loss_of(ids), np.ones(len(ids), bool), round_, 0.1, round_=round_, seq=round_))
    store.record_round(round_, {"test_accuracy": 0.5})
    return ids


def test_full_trains_on_every_sample_every_round_with_weight_one():
    store = HardnessStore(StoreConfig.create(n=101, epochs=4, method="full", warm_start=1, cycle_length=1))
    for r in range(4):
        ids = _train(store, r, lambda ids: ids / 100.0, world=1)
        assert ids.tolist() == list(range(101))
        assert store.loss_weights(ids).tolist() == [1.0] * 101


def test_infobatch_prunes_below_mean_losses_with_probability_r_and_rescales_the_kept():
    n, r = 4000, 0.5
    cfg = StoreConfig.create(n=n, epochs=8, method="infobatch", warm_start=1, cycle_length=2, seed=3)
    store = HardnessStore(cfg)
    loss = np.linspace(0.0, 2.0, n, dtype=np.float32)  # mean 1: ids below n/2 lie below the mean
    first = _train(store, 0, lambda ids: loss[ids])
    assert len(first) == n  # nothing seen yet: every sample is kept, even in the warm-start round
    ids = _train(store, 1, lambda ids: loss[ids])
    below, above = ids[ids < n // 2], ids[ids >= n // 2]
    assert len(above) == n // 2  # every above-mean sample is kept
    assert abs(len(below) - (1 - r) * n / 2) < 4 * np.sqrt(n / 2 * r * (1 - r))
    w = store.loss_weights(ids)
    assert np.all(w[ids < n // 2] == pytest.approx(1 / (1 - r)))
    assert np.all(w[ids >= n // 2] == 1.0)
    # The expected gradient is full data's: the weighted count of below-mean samples is unbiased.
    assert abs(w[ids < n // 2].sum() - n / 2) < 4 * np.sqrt(n / 2 * r / (1 - r))


def test_infobatch_anneals_to_full_data_in_its_last_rounds():
    n = 400
    store = HardnessStore(StoreConfig.create(n=n, epochs=8, method="infobatch", warm_start=1, cycle_length=2))
    loss = np.linspace(0.0, 2.0, n, dtype=np.float32)
    sizes = [len(_train(store, r, lambda ids: loss[ids])) for r in range(8)]
    assert sizes[-1] == n  # round(0.125 * 8) = 1 annealing round
    assert all(s < n for s in sizes[1:-1])
    summaries = store.round_summaries()
    assert summaries[-1].selector == "all" and summaries[1].selector == "infobatch"


def test_anneal_setting_turns_the_last_rounds_of_any_method_to_full_data():
    n = 200
    cfg = StoreConfig.create(n=n, epochs=6, method="dihcl-greedy", warm_start=1, cycle_length=1, anneal=0.34)
    store = HardnessStore(cfg)
    sizes = [len(_train(store, r, lambda ids: ids / 100.0)) for r in range(6)]
    assert sizes[0] == n and sizes[-2:] == [n, n] and max(sizes[1:4]) < n


def test_unbiased_weights_are_inverse_inclusion_probabilities_of_dihcl_exp():
    n = 2000
    cfg = StoreConfig.create(
        n=n, epochs=3, method="dihcl-exp", warm_start=1, cycle_length=1, budget_start=0.3, unbiased=True
    )
    store = HardnessStore(cfg)
    hard = np.where(np.arange(n) < 200, 5.0, 0.5).astype(np.float32)
    _train(store, 0, lambda ids: hard[ids])
    ids = _train(store, 1, lambda ids: hard[ids])
    w = store.loss_weights(ids)
    k = len(ids)
    # Hard samples are drawn more often, so they weigh less than easy ones; the weights average ~1.
    assert w[ids < 200].mean() < w[ids >= 200].mean()
    assert 0.7 < w.sum() / k < 1.3 and w.max() <= 10.0


def test_unbiased_is_refused_for_a_deterministic_selector_and_bad_settings_name_themselves():
    with pytest.raises(ValueError, match="unbiased needs a selector"):
        StoreConfig(n=10, method="dihcl-greedy", unbiased=True)
    with pytest.raises(ValueError, match="anneal must be in"):
        StoreConfig.create(n=10, anneal=1.0)
    with pytest.raises(ValueError, match="prune_ratio must be in"):
        StoreConfig(n=10, method="infobatch", selector_params={"prune_ratio": 1.0})


def test_loss_weights_over_http_match_the_store_and_bad_ids_are_4xx():
    from fastapi.testclient import TestClient

    from scorer_service.web.app import build_app
    from scorer_service.web.directory import LocalDirectory

    n = 400
    store = HardnessStore(
        StoreConfig.create(n=n, epochs=4, method="infobatch", run="ib", warm_start=1, cycle_length=1)
    )
    loss = np.linspace(0.0, 2.0, n, dtype=np.float32)
    _train(store, 0, lambda ids: loss[ids])
    ids = store.subset(1, 0, 1)
    client = TestClient(build_app(LocalDirectory({"ib": store}), token="tok"))
    auth = {"Authorization": "Bearer tok"}
    r = client.post("/v1/runs/ib/loss-weights", json={"ids": ids.tolist()}, headers=auth)
    assert r.status_code == 200
    assert r.json()["weights"] == pytest.approx(store.loss_weights(ids).tolist())
    assert sorted(set(r.json()["weights"])) == [1.0, 2.0]
    for bad in ([n], [-1], [2**70], ["x"]):
        r = client.post("/v1/runs/ib/loss-weights", json={"ids": bad}, headers=auth)
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)


def test_a_query_parameter_the_route_does_not_declare_is_a_422_naming_it():
    from fastapi.testclient import TestClient

    from scorer_service.web.app import build_app
    from scorer_service.web.directory import LocalDirectory

    store = HardnessStore(StoreConfig.create(n=20, epochs=3, run="q", warm_start=1, cycle_length=1))
    client = TestClient(build_app(LocalDirectory({"q": store}), token="tok"))
    auth = {"Authorization": "Bearer tok"}
    ok = client.get("/v1/runs/q/rounds/0/slice", params={"rank": 0, "world_size": 1}, headers=auth)
    assert ok.status_code == 200 and len(ok.json()["ids"]) == 20
    r = client.get("/v1/runs/q/rounds/0/slice", params={"rank": 0, "world_size": 1, "wrold": 2}, headers=auth)
    assert r.status_code == 422 and "wrold" in r.json()["detail"] and r.json()["type"] == "InvalidQuery"
    r = client.post("/v1/runs/q/rewind", params={"completed_round": -1, "x": 1}, headers=auth)
    assert r.status_code == 422 and "query parameter x" in r.json()["detail"]

"""The public API (``import curriculum``) as a team's own training loop uses it."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest
import ray
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import curriculum
from scorer_service.ray.actor import get_store


@pytest.fixture
def run_name(ray_session, request):
    name = f"api-{request.node.name}"[:100]
    yield name
    with contextlib.suppress(KeyError):
        ray.kill(get_store(name))


class IdImages(Dataset):
    """Item i is an image whose every pixel is i, labelled i % 10: byproducts tell which id they came from."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 4, 4), float(i)), i % 10


def test_sampler_and_recorder_in_one_process(run_name):
    run = curriculum.create_run(run_name, n=40, epochs=3, warm_start=1, cycle_length=1, method="dihcl-greedy")
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    model = torch.nn.Linear(16, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    recorder = sampler.recorder(opt, flush_samples=8)
    loader = DataLoader(curriculum.WithIds(IdImages(40)), batch_size=8, sampler=sampler)
    for rnd in range(sampler.start_round, sampler.epochs):
        sampler.set_epoch(rnd)
        for ids, x, y in loader:
            logits = model(x.flatten(1) / 40)
            loss = F.cross_entropy(logits, y, reduction="none")
            opt.zero_grad()
            loss.mean().backward()
            opt.step()
            recorder.observe(ids, x.flatten(1)[:, 0], logits=logits, labels=y)  # "loss" = the id itself
        recorder.end_round({"accuracy": 0.5})
    assert sampler.state_dict() == {"run": run_name, "round": 2, "step": sampler.step}
    rounds = run.rounds()
    assert [r.metrics["accuracy"] for r in rounds] == [0.5, 0.5, 0.5]
    seen = run.scores(("seen",))["seen"]
    expected = np.zeros(40, dtype=np.int64)
    for r in range(3):
        expected[run.subset(r)] += 1
    np.testing.assert_array_equal(seen, expected)
    last = run.scores(("last_loss",))["last_loss"]
    np.testing.assert_array_equal(last[seen > 0], np.flatnonzero(seen > 0).astype(np.float32))
    # The label trained on and the prediction travel with logits= and labels= (label-issue reports).
    cols = run.scores(("label", "predicted"))
    np.testing.assert_array_equal(cols["label"][seen > 0], np.flatnonzero(seen > 0) % 10)
    assert ((cols["predicted"][seen > 0] >= 0) & (cols["predicted"][seen > 0] < 10)).all()
    batches = sum(-(-len(run.subset(r)) // 8) for r in range(3))  # one optimizer step per batch
    assert run.info().steps == sampler.step == batches


def test_resuming_from_state_dict_rewinds_the_store(run_name):
    run = curriculum.create_run(run_name, n=20, epochs=4, warm_start=1, cycle_length=1)

    def train_rounds(sampler: curriculum.RoundSampler, rounds: range) -> None:
        recorder = sampler.recorder()
        for rnd in rounds:
            sampler.set_epoch(rnd)
            ids = np.fromiter(sampler, dtype=np.int64)
            recorder.observe(
                ids,
                torch.ones(len(ids)),
                correct=torch.ones(len(ids), dtype=torch.bool),
                step=sampler.step,
                lr=0.1,
            )
            sampler.step += 1
            recorder.end_round()

    first = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    train_rounds(first, range(2))
    saved = first.state_dict()
    train_rounds(first, range(2, 3))  # a lost attempt: round 2 recorded, then the worker dies
    assert run.info().rounds == 3
    again = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    again.load_state_dict(saved)
    assert (again.start_round, again.step) == (2, 2)
    train_rounds(again, range(again.start_round, again.epochs))
    seen = run.scores(("seen",))["seen"]
    expected = np.zeros(20, dtype=np.int64)
    for r in range(4):
        expected[run.subset(r)] += 1
    np.testing.assert_array_equal(seen, expected)  # round 2's lost observations were forgotten
    with pytest.raises(ValueError, match="belongs to run"):
        again.load_state_dict({**saved, "run": "other"})


def test_regression_runs_send_no_correctness_and_warm_up_from_lr_zero(run_name):
    run = curriculum.create_run(run_name, n=10, epochs=2, warm_start=1, correct=False, metric="dloss")
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    recorder = sampler.recorder(flush_samples=10)  # one send per step: a sample appears once per batch
    sampler.set_epoch(0)
    ids = np.arange(10)
    recorder.observe(ids, torch.linspace(0, 1, 10), step=0, lr=0.0)  # warm-up starts at lr = 0
    recorder.observe(ids, torch.linspace(1, 2, 10), step=1, lr=0.0)
    recorder.observe(ids, torch.linspace(2, 4, 10), step=2, lr=0.5)
    recorder.end_round()
    s = run.scores(("dih", "seen", "last_correct"))
    # dloss over lr progress: the step at lr 0 moved nothing, so only the last observation counts.
    np.testing.assert_allclose(s["dih"], 0.95 * np.linspace(1, 2, 10) / 0.5 + 0.05)
    assert s["seen"].tolist() == [3] * 10 and s["last_correct"].tolist() == [-1] * 10


def test_methods_that_need_a_byproduct_the_run_will_not_send_are_refused_at_creation(ray_session):
    with pytest.raises(ValueError, match="metric flip needs correctness"):
        curriculum.create_run("refused-1", n=10, metric="flip", correct=False)
    with pytest.raises(ValueError, match="method 'docl' needs the logits"):
        curriculum.create_run("refused-2", n=10, method="docl")
    with pytest.raises(ValueError, match="unknown run settings: epoch"):
        curriculum.create_run("refused-3", n=10, epoch=3)


def test_a_rejected_batch_raises_in_the_trainer_or_is_logged_and_dropped(run_name, caplog):
    curriculum.create_run(run_name, n=10, epochs=2, warm_start=1)
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    sampler.set_epoch(0)
    strict = sampler.recorder()
    strict.observe([3, 99], torch.ones(2), correct=torch.ones(2, dtype=torch.bool), step=0, lr=0.1)
    with pytest.raises(curriculum.InvalidBatch, match=r"sample_id 99 is out of range \[0, 10\)"):
        strict.flush()
    lenient = sampler.recorder(on_error="log")
    lenient.observe([3, 99], torch.ones(2), correct=torch.ones(2, dtype=torch.bool), step=0, lr=0.1)
    with caplog.at_level(logging.WARNING, logger="curriculum.recorder"):
        lenient.flush()
    assert "sample_id 99 is out of range" in caplog.text
    assert curriculum.attach_run(run_name).info().ingested == 0


def test_a_second_run_with_a_live_name_is_refused(run_name):
    curriculum.create_run(run_name, n=10, epochs=3)
    with pytest.raises(
        curriculum.RunExists, match=rf"run '{run_name}' already exists and is in progress \(0/3"
    ):
        curriculum.create_run(run_name, n=10, epochs=3)
    assert curriculum.attach_run(run_name).info().n == 10
    curriculum.create_run(run_name, n=12, epochs=3, replace=True)
    assert curriculum.attach_run(run_name).info().n == 12


def test_ids_survive_shuffling_worker_processes_and_drop_last():
    loader = DataLoader(
        curriculum.WithIds(IdImages(50)), batch_size=7, shuffle=True, num_workers=2, drop_last=True
    )
    seen = []
    for ids, x, y in loader:
        assert torch.equal(x[:, 0, 0, 0].long(), ids) and torch.equal(y, ids % 10)
        seen += ids.tolist()
    assert len(seen) == len(set(seen)) == 49


def _two_rank_loop(config: dict) -> None:
    model = ray.train.torch.prepare_model(torch.nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sampler = curriculum.RoundSampler(config["run"])
    recorder = sampler.recorder(opt, flush_samples=16)
    loader = DataLoader(
        curriculum.WithIds(IdImages(config["n"])), batch_size=5, sampler=sampler, num_workers=2
    )
    for rnd in range(sampler.epochs):
        sampler.set_epoch(rnd)
        for ids, x, y in loader:
            logits = model(x.flatten(1) / config["n"])
            F.cross_entropy(logits, y).backward()
            opt.step()
            opt.zero_grad()
            # The "loss" is the image's own pixel, i.e. its id; correct is whether y is the id's label.
            recorder.observe(ids, x.flatten(1)[:, 0], correct=y == ids % 10)
        recorder.end_round()
        ray.train.report({"round": rnd})


@pytest.mark.slow
def test_every_byproduct_lands_on_its_id_with_two_ranks_and_loader_workers(run_name, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    n = 60
    run = curriculum.create_run(run_name, n=n, epochs=3, warm_start=1, cycle_length=1, budget_start=0.5)
    TorchTrainer(
        _two_rank_loop,
        train_loop_config={"run": run_name, "n": n},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name=run_name, storage_path=str(tmp_path)),
    ).fit()
    s = run.scores(("seen", "last_loss", "last_correct"))
    expected = np.zeros(n, dtype=np.int64)
    for r in range(3):
        ids = run.subset(r)
        shards = [run.endpoint.subset(r, rank, 2) for rank in (0, 1)]
        assert len(shards[0]) == len(shards[1]) and not set(shards[0]) & set(shards[1])
        assert sorted(np.concatenate(shards)) == sorted(ids)
        expected[ids] += 1
    np.testing.assert_array_equal(s["seen"], expected)
    hit = s["seen"] > 0
    np.testing.assert_array_equal(s["last_loss"][hit], np.flatnonzero(hit).astype(np.float32))
    assert (s["last_correct"][hit] == 1).all()


def test_sampler_weights_are_the_stores_loss_weights_of_the_batch(run_name):
    """InfoBatch's first round trains on all data (weight 1 each); the next keeps the below-mean samples
    it does not prune at weight 1 / (1 - r): the sampler answers a batch's weights as the store has them."""
    run = curriculum.create_run(run_name, n=200, epochs=4, warm_start=1, cycle_length=1, method="infobatch")
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    recorder = sampler.recorder(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1))
    rng = np.random.default_rng(0)
    for rnd in range(2):
        sampler.set_epoch(rnd)
        batch = rng.permutation(sampler.ids)[:50]
        expected = ray.get(get_store(run_name).loss_weights.remote(batch))
        got = sampler.weights(torch.as_tensor(batch))
        assert got.dtype == torch.float32 and got.tolist() == pytest.approx(expected.tolist())
        if rnd == 0:
            assert got.tolist() == [1.0] * 50
        else:
            assert set(np.unique(expected).tolist()) == {1.0, 2.0}  # r = 0.5: kept below-mean ones weigh 2
        ids = torch.tensor(sampler.ids)
        loss = ids.float() / 200  # higher ids, higher losses
        recorder.observe(ids, loss, correct=torch.ones(len(ids), dtype=torch.bool), step=rnd, lr=0.1)
        recorder.end_round({})
    assert len(run.subset(1)) < 200

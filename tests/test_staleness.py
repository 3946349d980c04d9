"""Bounded staleness: ranks that skip the end-of-round barrier, and rounds selected from scores at most
``max_staleness`` optimizer steps behind the trainers."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
import ray
import torch
import torch.nn.functional as F

import curriculum
from scorer_service.config import StoreConfig
from scorer_service.core import staleness
from scorer_service.core.errors import InvalidBatch, NotReady
from scorer_service.ray.actor import get_store
from scorer_service.shard import StoreShard
from scorer_service.store import HardnessStore
from tests.helpers import batch


def config(**kw) -> StoreConfig:
    base = {"n": 40, "epochs": 3, "method": "dihcl-greedy", "warm_start": 1, "cycle_length": 1}
    return StoreConfig.create(**(base | kw))


def sent(ids, loss: float, step: int, rank: int, seq: int) -> dict:
    """Rank ``rank``'s batch of ``ids`` at ``step`` (its writer is named after the rank)."""
    m = len(ids)
    return batch(ids, [loss] * m, [True] * m, step, 0.1, rank=rank, writer=f"rank-{rank}", seq=seq)


def test_lag_is_the_slowest_rank_on_the_slowest_shard():
    parts = [{0: 9, 1: 6}, {0: 9, 1: 7}]
    assert staleness.lag(parts, 2, 9) == 3  # rank 1 has reached step 6 on shard 0
    assert staleness.lag(parts, 1, 9) == 0
    assert staleness.lag(parts, 3, 9) == 10  # rank 2 sent nothing yet
    assert staleness.lag(parts, 2, 4) == 0  # the scores are ahead of the asker's step


def test_admit_refuses_past_the_bound_and_reports_the_lag_reached():
    progress = lambda: [{0: 9, 1: 6}]  # noqa: E731
    assert staleness.admit(1, 2, 9, 3, progress) == {"staleness_steps": 3}
    with pytest.raises(NotReady, match="3 steps behind step 9, and max_staleness is 2"):
        staleness.admit(1, 2, 9, 2, progress)
    assert staleness.admit(1, 2, 9, -1, progress) == {}  # ranks wait for each other
    assert staleness.admit(1, 2, None, 2, progress) == {}  # an asker that does not say its step


@pytest.mark.parametrize("shards", [1, 2])
def test_a_round_waits_until_every_rank_is_close_enough(shards):
    store = HardnessStore(config(max_staleness=2, store_shards=shards))
    ids = np.arange(40)
    for step in range(5):  # rank 0: steps 0..4 over its half; rank 1 only up to step 1
        store.ingest(sent(ids[step * 4 : step * 4 + 4], 1.0, step, 0, step))
    for step in range(2):
        store.ingest(sent(ids[20 + step * 4 : 24 + step * 4], 2.0, step, 1, step))
    store.subset(0, 0, 2)  # round 0 (warm start) selected without a step: as before
    store.record_round(0, {"accuracy": 0.1})
    before = store.round_summaries()
    with pytest.raises(NotReady, match="3 steps behind step 4"):
        store.subset(1, 0, 2, 4)
    assert store.round_summaries() == before  # a refused round changes nothing
    store.ingest(sent(ids[28:32], 2.0, 2, 1, 2))
    got = store.subset(1, 0, 2, 4)
    assert len(got) > 0
    assert store.round_summaries()[1].details["staleness_steps"] == 2
    assert store._ask(StoreShard.progress) == [{0: 4, 1: 2}] * shards


def test_without_max_staleness_a_late_observation_is_refused_and_with_it_dropped():
    late = sent([3, 4], 5.0, 1, 1, 0)
    early = batch([0, 1, 3], [1.0] * 3, [True] * 3, [0, 1, 2], 0.1, rank=0, writer="rank-0", seq=0)
    strict = HardnessStore(config())
    strict.ingest(early)
    with pytest.raises(InvalidBatch, match="already observed at the later step 2"):
        strict.ingest(late)
    loose = HardnessStore(config(max_staleness=4))
    loose.ingest(early)
    assert loose.ingest(late).applied == 1  # sample 4; sample 3's newer observation stays
    rows = {r.id: r for r in loose.samples([3, 4])}
    assert rows[3].last_loss == pytest.approx(1.0) and rows[4].last_loss == pytest.approx(5.0)
    assert loose.info().superseded == 1 and loose.info().ingested == 4


def test_progress_survives_a_restart(tmp_path):
    cfg = config(max_staleness=1, snapshot_dir=str(tmp_path))
    store = HardnessStore(cfg)
    store.ingest(batch(range(8), [1.0] * 8, [True] * 8, range(8), 0.1, rank=1, writer="rank-1", seq=0))
    store.snapshot()
    store.ingest(sent([10], 1.0, 8, 0, 0))  # in the log only
    again = HardnessStore(cfg)
    assert again._ask(StoreShard.progress) == [{0: 8, 1: 7}]


def test_max_staleness_must_be_at_least_minus_one():
    with pytest.raises(ValueError, match="max_staleness must be >= -1"):
        config(max_staleness=-2)


# ---- two ranks of a real training loop, the store an actor ----------------------------------


@pytest.fixture
def run_name(ray_session, request):
    name = f"stale-{request.node.name}"[:100]
    yield name
    with contextlib.suppress(KeyError):
        ray.kill(get_store(name))


def _train(run: str, rank: int, slow_round: int, events: dict, errors: list) -> None:
    """One rank: 4 samples a step; rank 1 sleeps a second before each of ``slow_round``'s last two."""
    try:
        sampler = curriculum.RoundSampler(run, rank=rank, world_size=2, barrier=events["barrier"].wait)
        model = torch.nn.Linear(1, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        recorder = sampler.recorder(opt, flush_samples=4)
        for rnd in range(sampler.epochs):
            sampler.set_epoch(rnd)
            events[f"fetched {rank} {rnd}"] = time.monotonic()
            order = list(sampler)
            for i in range(0, len(order), 4):
                if rank == 1 and rnd == slow_round and i >= 8:
                    time.sleep(1.0)
                    events[f"woke {rank} {rnd}"] = time.monotonic()
                ids = torch.tensor(order[i : i + 4])
                x = ids.float()[:, None] / 32
                logits = model(x)
                loss = F.cross_entropy(logits, ids % 2, reduction="none")
                opt.zero_grad()
                loss.mean().backward()
                opt.step()
                recorder.observe(ids, loss, logits=logits, labels=ids % 2)
            events[f"ended {rank} {rnd}"] = time.monotonic()
            recorder.end_round({"loss": float(loss.detach().mean())})
    except BaseException as e:  # reported to the test's thread
        errors.append(e)


def two_ranks(run: str) -> dict:
    """Train ranks 0 and 1 of ``run`` in two threads (rank 1 slow in round 0); when each did what."""
    events: dict = {"barrier": threading.Barrier(2)}
    errors: list = []
    threads = [threading.Thread(target=_train, args=(run, r, 0, events, errors)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return events


def test_ranks_skip_the_barrier_and_the_round_reports_its_lag(run_name):
    run = curriculum.create_run(
        run_name, n=32, epochs=3, warm_start=1, cycle_length=1, budget_start=1.0, max_staleness=2
    )
    events = two_ranks(run_name)
    # Rank 0 had round 1's shard while rank 1 was still in its last steps of round 0.
    assert events["fetched 0 1"] < events["woke 1 0"] < events["ended 1 0"]
    rounds = run.rounds()
    lag = rounds[1].details["staleness_steps"]
    assert 0 <= lag <= 2
    assert [len(r.metrics) for r in rounds] == [1, 1, 1]
    info = run.info()
    # Every observation reached the store: applied, or dropped for a newer one of the same sample.
    assert info.ingested + info.superseded == sum(r.size // 2 * 2 for r in rounds)


def test_with_max_staleness_zero_the_round_waits_for_every_step(run_name):
    run = curriculum.create_run(
        run_name, n=32, epochs=2, warm_start=1, cycle_length=1, budget_start=1.0, max_staleness=0
    )
    events = two_ranks(run_name)
    assert events["fetched 0 1"] > events["woke 1 0"]  # it waited for rank 1's last step
    assert run.rounds()[1].details["staleness_steps"] == 0

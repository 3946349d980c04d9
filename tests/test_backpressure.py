"""A writer faster than the store stalls instead of growing the store's memory."""

import os
import time

import numpy as np
import pytest
import ray
import torch

import curriculum
from curriculum._internal.ray_endpoint import ActorEndpoint
from scorer_service.config import StoreConfig
from scorer_service.ray.actor import create_store, delete_store, get_shards, get_store
from scorer_service.shard import StoreShard
from tests.helpers import batch, rss_mib

RUN, N, BATCH, DELAY_S = "backpressure", 1_000_000, 2048, 0.04


class SlowShard(StoreShard):
    """A shard that takes 40 ms more to apply each batch (under its change lock, so batches arriving on
    several threads still take 40 ms each): about 50k samples/s, a small part of what a writer sends."""

    def _ingest(self, data):
        time.sleep(DELAY_S)
        return super()._ingest(data)


@pytest.fixture
def slow_store(ray_session, tmp_path):
    cfg = StoreConfig.create(
        n=N, epochs=2, run=RUN, store_shards=2, snapshot_dir=str(tmp_path), incarnation="x"
    )
    create_store(cfg, shard_cls=SlowShard)
    pids = [ray.get(h.__ray_call__.remote(lambda self: os.getpid())) for h in get_shards(RUN, 2)]
    yield pids
    delete_store(RUN)


def test_a_writer_ten_times_faster_than_the_shards_stalls_and_their_memory_stays_flat(slow_store):
    pids = slow_store
    sampler = curriculum.RoundSampler(RUN, rank=0, world_size=1)
    sampler.set_epoch(0)
    recorder = sampler.recorder(flush_samples=BATCH, max_in_flight=8, max_lag_s=0.1)
    rng = np.random.default_rng(0)
    before = [rss_mib(p) for p in pids]
    peak = list(before)
    t0, sent, step = time.perf_counter(), 0, 0
    while time.perf_counter() - t0 < 10.0:
        ids = torch.as_tensor(rng.choice(N, BATCH, replace=False))
        recorder.observe(
            ids, torch.ones(BATCH), correct=torch.ones(BATCH, dtype=torch.bool), step=step, lr=0.1
        )
        sent, step = sent + BATCH, step + 1
        if step % 10 == 0:
            peak = [max(a, rss_mib(p)) for a, p in zip(peak, pids, strict=True)]
    elapsed = time.perf_counter() - t0
    recorder.flush()
    # Each flush reaches both shards, and each shard needs DELAY_S per part: the writer kept their pace.
    capacity = BATCH / DELAY_S
    assert sent / elapsed < 1.3 * capacity, (sent / elapsed, capacity)
    assert recorder.throttled_seconds > 1.0
    info = ray.get(get_store(RUN).info.remote())
    assert info.ingested == sent
    for shard in info.shards:
        assert shard.max_lag_s < 1.0 and shard.writers == 1
    assert max(p - b for p, b in zip(peak, before, strict=True)) < 16, (before, peak)

    # The same batches sent without waiting for acknowledgements: queued in the shards' processes.
    endpoint, base = ActorEndpoint(RUN), [rss_mib(p) for p in pids]
    for i in range(2000):
        ids = rng.choice(N, BATCH, replace=False)
        endpoint.send_ingest(
            batch(ids, np.ones(BATCH), np.ones(BATCH, bool), step=step + i, lr=0.1, writer="raw", seq=i),
        )
    grown = max(rss_mib(p) - b for p, b in zip(pids, base, strict=True))
    assert grown > 16, grown

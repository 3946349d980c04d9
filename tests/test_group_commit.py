"""Group commit: concurrent ingests share fsyncs, each acknowledged only once its record is on disk,
and each writer's batches are applied in its own order however the calls are scheduled."""

import contextlib
import os
import threading
import time

import numpy as np
import pytest
import ray

from scorer_service.config import StoreConfig
from scorer_service.core.turns import WriterTurns, in_flight
from scorer_service.durability.wal import LogWriter
from scorer_service.ray.actor import create_store, delete_store
from scorer_service.store import HardnessStore
from tests.helpers import batch

WRITERS, BATCHES, SIZE = 8, 25, 64


def store_config(tmp_path, run: str, **kw) -> StoreConfig:
    base = {"n": WRITERS * SIZE * 4, "epochs": 2, "run": run, "snapshot_dir": str(tmp_path)}
    return StoreConfig.create(**(base | {"fsync": "always", "snapshot_every_s": 3600} | kw))


def writer_batch(w: int, k: int) -> dict:
    """Batch ``k`` of writer ``w``: one of the writer's four id blocks in turn, at step ``k``, so each
    sample comes again two batches later at a later step (applied out of order, it would be refused)."""
    ids = np.arange(SIZE) + (w * 4 + k % 4) * SIZE
    return batch(ids, np.full(SIZE, 1.0 + k), np.ones(SIZE, bool), step=k, lr=0.1, writer=f"w{w}", seq=k)


def test_concurrent_ingests_share_fsyncs_and_none_is_acknowledged_before_its_fsync(tmp_path, monkeypatch):
    guard = threading.Lock()
    synced: dict[int, int] = {}  # log fd -> bytes on disk (fsync completed)
    calls: list[int] = []
    real_sync, real_append = os.fdatasync, LogWriter.append
    logged = threading.local()

    def fdatasync(fd):
        size = os.fstat(fd).st_size  # everything written before the fsync starts is covered by it
        time.sleep(0.005)  # a disk slower than the apply, as a network volume is
        real_sync(fd)
        with guard:
            synced[fd] = max(synced.get(fd, 0), size)
            calls.append(fd)

    def append(self, record, sync=False):
        position = real_append(self, record, sync)
        logged.where = (self._file.fileno(), position)
        return position

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(LogWriter, "append", append)
    s = HardnessStore(store_config(tmp_path, "gc"))
    before = len(calls)
    early: list[tuple] = []

    def write(w: int) -> None:
        for k in range(BATCHES):
            s.ingest(writer_batch(w, k))
            fd, position = logged.where
            with guard:
                if synced.get(fd, 0) < position:
                    early.append((w, k, synced.get(fd, 0), position))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fsyncs = len(calls) - before
    info = s.info()
    assert early == []  # every acknowledgement came after the fsync covering its record
    assert info.batches == WRITERS * BATCHES and info.rejected == 0
    assert info.ingested == WRITERS * BATCHES * SIZE
    # 8 writers, one batch each in flight: most fsyncs cover several batches
    assert fsyncs <= WRITERS * BATCHES / 2, fsyncs
    assert info.fsyncs == len(calls)  # the store counts its log's fsyncs
    # the last batch of each writer set its samples' step
    steps = s.columns(["last_seen_step"])["last_seen_step"].reshape(WRITERS, 4, SIZE)
    last = [max(k for k in range(BATCHES) if k % 4 == block) for block in range(4)]
    assert (steps == np.asarray(last)[None, :, None]).all()


def test_a_writers_batches_arriving_out_of_order_are_applied_in_its_order(tmp_path):
    s = HardnessStore(store_config(tmp_path, "order"))
    errors: list[BaseException] = []

    def send(k: int) -> None:
        try:
            s.ingest(writer_batch(0, k))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(k,)) for k in reversed(range(8))]
    for t in threads:  # the newest first: each waits for the one before it
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    assert errors == []
    assert s.info().batches == 8
    steps = s.columns(["last_seen_step"])["last_seen_step"][: 4 * SIZE : SIZE]
    assert steps.tolist() == [4, 5, 6, 7]


@ray.remote(num_cpus=0)
def stream(store: ray.actor.ActorHandle, w: int, window: int) -> int:
    pending: list = []
    for k in range(BATCHES):
        if len(pending) >= window:
            _, pending = ray.wait(pending, num_returns=1)
        pending.append(store.ingest.remote(writer_batch(w, k)))
    return sum(r.applied for r in ray.get(pending))


def test_the_store_actor_runs_concurrent_ingests_in_writer_order_sharing_fsyncs(ray_session, tmp_path):
    run = "group-commit"
    store = create_store(store_config(tmp_path, run))
    try:
        ray.get([stream.remote(store, w, 8) for w in range(4)])
        info = ray.get(store.info.remote())
    finally:
        with contextlib.suppress(KeyError):
            delete_store(run)
    assert info.rejected == 0  # a writer's batch applied before its predecessor would be refused
    assert info.batches == 4 * BATCHES and info.ingested == 4 * BATCHES * SIZE
    assert 0 < info.fsyncs < info.batches, info.fsyncs


@pytest.mark.parametrize("policy", ["round", "never"])
def test_other_policies_do_not_fsync_per_ingest(tmp_path, policy):
    s = HardnessStore(store_config(tmp_path, "p", fsync=policy))
    start = s.info().fsyncs
    for k in range(5):
        s.ingest(writer_batch(0, k))
    assert s.info().fsyncs == start


def test_a_batch_whose_predecessor_is_in_flight_waits_for_it_past_the_short_patience():
    """Under load the thread holding batch 0 may not run for seconds: batch 1, sent while 0 was in
    flight (``queued`` 2), still waits its turn; one sent after 0 was acknowledged does not wait long."""
    turns = WriterTurns(patience_s=0.05, in_flight_patience_s=5.0)
    order: list[int] = []

    def late_first() -> None:
        time.sleep(0.5)  # past the short patience
        order.append(0)
        turns.done("w", 0)

    threading.Thread(target=late_first).start()
    turns.wait("w", 1, in_flight=2)
    order.append(1)
    assert order == [0, 1]
    started = time.monotonic()
    turns.wait("w", 5, in_flight=1)  # 2..4 were acknowledged before 5 was sent: lost, no long wait
    assert time.monotonic() - started < 1.0
    assert in_flight({"queued": "3"}) == 3 and in_flight({}) == 0 and in_flight({"queued": "x"}) == 0

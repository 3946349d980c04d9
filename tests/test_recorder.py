"""The recorder's training-thread side: observe() only appends, hand-offs never wait for the store
until a bounded number of buffers is outstanding, and on CUDA nothing synchronizes the stream."""

from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np
import pytest
import ray
import torch

import curriculum
from scorer_service.config import StoreConfig
from scorer_service.ray.actor import create_store, get_store
from scorer_service.store import HardnessStore

TORCH_DIR = os.path.dirname(torch.__file__)


class SlowStore(HardnessStore):
    """The real store, taking a second per byproduct batch (a store far behind its trainers)."""

    def ingest(self, data):
        time.sleep(1.0)
        return super().ingest(data)


@pytest.fixture
def run_name(ray_session, request):
    name = f"recorder-{request.node.name}"[:100]
    yield name
    with contextlib.suppress(KeyError):
        ray.kill(get_store(name))


def _torch_calls_during(fn) -> list[str]:
    """Every call into torch (Python or C, a tensor's methods included) made by this thread in fn()."""
    seen: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(TORCH_DIR):
            seen.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            module = getattr(arg, "__module__", None) or ""
            if isinstance(owner, torch.Tensor) or module.startswith("torch"):
                seen.append(f"{module}.{getattr(arg, '__qualname__', arg)}")

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def test_observe_and_hand_offs_call_nothing_of_torch_on_the_training_thread(run_name):
    """No tensor method, no torch function: so no device synchronization, on any device. Correctness is
    derived from the logits on the sender's thread, and every value still lands on its sample."""
    n, per_step = 96, 8
    run = curriculum.create_run(run_name, n=n, epochs=2, warm_start=1)
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    recorder = sampler.recorder(flush_samples=32)  # 12 steps: three hand-offs inside the loop
    sampler.set_epoch(0)
    ids = np.random.default_rng(0).permutation(n)
    labels = torch.as_tensor(ids % 10)
    # Logits that predict the label for even ids only; loss = the id, so each value names its sample.
    logits = torch.nn.functional.one_hot(torch.as_tensor((ids + ids % 2) % 10), 10).float()
    losses = torch.as_tensor(ids, dtype=torch.float32)
    # The training step's own tensors, sliced before tracing: only the recorder's calls are traced.
    steps = [
        (ids[a : a + per_step], *(t[a : a + per_step] for t in (losses, logits, labels)))
        for a in range(0, n, per_step)
    ]

    def train() -> None:
        for k, (i, loss, z, y) in enumerate(steps):
            recorder.observe(i, loss, logits=z, labels=y, step=k, lr=0.1)

    assert _torch_calls_during(train) == []
    assert recorder.flush() == n
    s = run.scores(("seen", "last_loss", "last_correct"))
    assert s["seen"].tolist() == [1] * n
    np.testing.assert_array_equal(s["last_loss"], np.arange(n, dtype=np.float32))
    np.testing.assert_array_equal(s["last_correct"], (np.arange(n) % 2 == 0).astype(np.int8))
    assert run.info().steps == len(steps) and len(recorder.flush_seconds) == 1


def test_hand_off_returns_at_once_until_the_bound_then_waits(run_name):
    """With the store a second per batch behind, max_in_flight sends plus the sender's batch plus two
    queued buffers are handed off without waiting; the next hand-off waits for the store."""
    create_store(StoreConfig.create(n=64, epochs=2, warm_start=1, run=run_name), store_cls=SlowStore)
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    recorder = sampler.recorder(flush_samples=4, max_in_flight=2)
    sampler.set_epoch(0)
    bound = 2 + 1 + 2
    seconds = []
    for k in range(bound + 1):
        ids = np.arange(4 * k, 4 * k + 4)
        t0 = time.perf_counter()
        recorder.observe(ids, torch.ones(4), correct=torch.ones(4, dtype=torch.bool), step=k, lr=0.1)
        seconds.append(time.perf_counter() - t0)
    assert max(seconds[:bound]) < 0.5, seconds
    assert seconds[bound] > 0.5, seconds
    assert recorder.flush() == 4 * (bound + 1)
    info = ray.get(get_store(run_name).info.remote())
    assert info.ingested == 4 * (bound + 1) and info.batches == bound + 1


def test_a_rejected_batch_raises_at_the_next_hand_off(run_name):
    curriculum.create_run(run_name, n=10, epochs=2, warm_start=1)
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    sampler.set_epoch(0)
    recorder = sampler.recorder(flush_samples=2, max_in_flight=1)
    one = torch.ones(2, dtype=torch.bool)
    recorder.observe([3, 99], torch.ones(2), correct=one, step=0, lr=0.1)  # rejected by the store
    with pytest.raises(curriculum.InvalidBatch, match="sample_id 99 is out of range"):
        # The second send waits for the first (one in flight); the third hand-off finds its error.
        for k in range(1, 20):
            recorder.observe([0, 1], torch.ones(2), correct=one, step=k, lr=0.1)
            time.sleep(0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_training_thread_never_synchronizes(run_name):
    """torch's sync debug mode raises on any synchronizing CUDA call of the training loop's recorder use."""
    n, per_step = 4096, 256
    run = curriculum.create_run(run_name, n=n, epochs=2, warm_start=1)
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    recorder = sampler.recorder(flush_samples=1024)
    sampler.set_epoch(0)
    device = torch.device("cuda")
    ids = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(device)
    logits = torch.randn(n, 10, device=device)
    labels, losses = ids % 10, ids.float()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for k, a in enumerate(range(0, n, per_step)):
            b = slice(a, a + per_step)
            recorder.observe(ids[b], losses[b], logits=logits[b], labels=labels[b], step=k, lr=0.1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    recorder.flush()
    s = run.scores(("seen", "last_loss", "last_correct"))
    assert s["seen"].tolist() == [1] * n
    np.testing.assert_array_equal(s["last_loss"], np.arange(n, dtype=np.float32))
    order = ids.cpu().numpy()
    expected = (logits.argmax(1) == labels).cpu().numpy().astype(np.int8)
    np.testing.assert_array_equal(s["last_correct"][order], expected)


def test_a_buffer_older_than_flush_every_s_reaches_the_store_mid_round(run_name):
    """However large flush_samples is, observations reach the store while the round runs."""
    run = curriculum.create_run(run_name, n=64, epochs=2, warm_start=1)
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    recorder = sampler.recorder(flush_samples=1 << 30, flush_every_s=0.3)
    sampler.set_epoch(0)
    one = torch.ones(4, dtype=torch.bool)
    recorder.observe(np.arange(4), torch.ones(4), correct=one, step=0, lr=0.1)
    recorder.observe(np.arange(4, 8), torch.ones(4), correct=one, step=1, lr=0.1)
    time.sleep(0.4)
    recorder.observe(np.arange(8, 12), torch.ones(4), correct=one, step=2, lr=0.1)  # the buffer is due
    deadline = time.monotonic() + 30
    while run.info().ingested < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    info = run.info()
    assert info.ingested == 12 and info.batches == 1  # sent without a flush, the three steps at once
    recorder.observe(np.arange(12, 16), torch.ones(4), correct=one, step=3, lr=0.1)
    time.sleep(0.5)
    assert run.info().ingested == 12  # not due: kept until the next observe or the round's end
    assert recorder.flush() == 16


def test_observe_takes_tensors_attached_to_the_autograd_graph(run_name):
    n = 32
    run = curriculum.create_run(run_name, n=n, epochs=2, warm_start=1, num_classes=4, embedding_dim=8)
    sampler = curriculum.RoundSampler(run_name, rank=0, world_size=1)
    model = torch.nn.Linear(6, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = sampler.recorder(optimizer, flush_samples=16)
    sampler.set_epoch(0)
    x, y = torch.randn(n, 6, generator=torch.Generator().manual_seed(0)), torch.arange(n) % 4
    expected = np.zeros(n, np.float32)
    for a in range(0, n, 8):
        ids = torch.arange(a, a + 8)
        logits = model(x[ids])
        loss = torch.nn.functional.cross_entropy(logits, y[ids], reduction="none")
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
        assert loss.requires_grad and logits.requires_grad  # handed over as they are
        expected[a : a + 8] = loss.detach().numpy()
        recorder.observe(ids, loss, logits=logits, labels=y[ids], embeddings=torch.cat([logits, logits], 1))
    assert recorder.flush() == n
    s = run.scores(("seen", "last_loss"))
    assert s["seen"].tolist() == [1] * n
    np.testing.assert_array_equal(s["last_loss"], expected)

"""Cost of byproduct streaming inside the training loop.

Two identically initialized models train on the same data, batch size and fixed index order; one
of them also hands every step's per-sample loss and correctness to the real
``trainers.recorder.Recorder``, which streams them to a real store actor and flushes at the end
of every epoch (as ``trainers.loop`` does at the end of every round). Epochs of the two alternate,
and which goes first alternates too; the overhead is the median over epoch pairs of the ratio of
their wall times, so drifts in machine load hit both sides of a ratio alike.

Torch runs one intra-op thread, as in a Ray Train worker with one CPU (Ray sets OMP_NUM_THREADS to
the worker's CPUs); on a shared machine more threads mostly measure contention.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
import torch.nn.functional as F

from benchmarks.report import ProgressFn, drop_store, markdown_table, pyplot, save_figure
from scorer_service.config import StoreConfig
from scorer_service.ray.actor import create_store
from trainers.datasets import load_dataset
from trainers.models import build_model
from trainers.recorder import Recorder
from trainers.sampler import RoundSampler

LR = 0.05
WARMUP_EPOCHS = 2
TARGET_PCT = 3.0


@dataclass(frozen=True)
class Workload:
    dataset: str
    model: str
    batch_size: int

    @property
    def name(self) -> str:
        return f"{self.dataset.split(':')[0]} {self.model} b{self.batch_size}"


@dataclass
class Settings:
    workloads: tuple[Workload, ...]
    # Epoch pairs (one plain, one streaming epoch each) after the warm-up.
    reps: int

    @classmethod
    def full(cls) -> Settings:
        # The default run (digits, small MLP, batch 64) has the cheapest steps, so the largest share
        # of streaming cost; the larger workload shows how that share shrinks with step cost.
        return cls(
            (Workload("digits", "mlp", 64), Workload("synthetic:n=20000,dim=64", "mlp-large", 256)),
            reps=41,
        )

    @classmethod
    def quick(cls) -> Settings:
        return cls((Workload("digits", "mlp", 64),), reps=15)


class _Trainer:
    """One model and optimizer stepping through the fixed batch order, one epoch per call."""

    def __init__(self, wl: Workload, data: Any, order: np.ndarray, device: torch.device) -> None:
        torch.manual_seed(0)
        self.device = device
        self.net = build_model(wl.model, data.input_shape, data.num_classes).to(device)
        self.opt = torch.optim.SGD(
            self.net.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4, nesterov=True
        )
        self.x, self.y = (t.to(device) for t in data.train.batch(np.arange(data.n)))
        self.batches = [order[i : i + wl.batch_size] for i in range(0, len(order), wl.batch_size)]
        self.index = [torch.as_tensor(b, device=device) for b in self.batches]
        self.step = 0

    def epoch(self, round_: int, client: Recorder | None) -> tuple[float, float]:
        """Wall seconds of one pass, including the end-of-round flush when streaming, and the CPU
        seconds of the training thread itself (the loop's own work, without the waiting)."""
        self._sync()
        t0, c0 = time.perf_counter(), time.thread_time()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        for ids, idx in zip(self.batches, self.index, strict=True):
            x, y = self.x[idx], self.y[idx]
            logits = self.net(x)
            loss_i = F.cross_entropy(logits, y, reduction="none")
            self.opt.zero_grad(set_to_none=True)
            loss_i.mean().backward()
            self.opt.step()
            if client is not None:
                client.observe(ids, loss_i, correct=logits.argmax(1) == y, step=self.step, lr=LR)
            loss_sum += loss_i.detach().sum()
            self.step += 1
        if client is not None:
            client.flush()
        # The training loop reads the round's loss once (a device sync); both variants do it.
        float(loss_sum)
        self._sync()
        return time.perf_counter() - t0, time.thread_time() - c0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _measure(
    wl: Workload,
    settings: Settings,
    device: torch.device,
    snapshot_dir: str,
    progress: ProgressFn,
    done: int,
    total: int,
) -> tuple[dict[str, Any], int]:
    data = load_dataset(wl.dataset, 0)
    order = np.random.default_rng(0).permutation(data.n)
    # A run name of its own per measurement: a durable store restores the state of a same-named run.
    run = f"bench-overhead-{os.getpid()}-{done}"
    # Durable, as ``curriculum train`` configures it: every ingest call is logged before it is applied.
    store = create_store(
        StoreConfig(n=data.n, epochs=1_000_000, run=run, method="random", snapshot_dir=snapshot_dir)
    )
    sampler = RoundSampler(run, rank=0, world_size=1)
    client = sampler.recorder()
    # Two identically initialized models on identical batches do identical arithmetic, so one
    # epoch of each can alternate: load drifts then hit both sides of every ratio alike.
    plain, streaming = _Trainer(wl, data, order, device), _Trainer(wl, data, order, device)
    times: dict[str, list[float]] = {"plain": [], "streaming": []}
    cpu: dict[str, list[float]] = {"plain": [], "streaming": []}
    try:
        for rep in range(-WARMUP_EPOCHS, settings.reps):
            pair = [("plain", plain, None), ("streaming", streaming, client)]
            sampler.set_epoch(rep + WARMUP_EPOCHS)  # the round the byproducts belong to
            for name, trainer, c in pair if rep % 2 == 0 else pair[::-1]:
                seconds, cpu_seconds = trainer.epoch(rep + WARMUP_EPOCHS, c)
                if rep >= 0:
                    times[name].append(seconds)
                    cpu[name].append(cpu_seconds)
            done += 1
            progress("overhead", done, total, f"{wl.name} on {device.type}")
        ingested = ray.get(store.info.remote())["ingested"]
    finally:
        drop_store(run)
    ratios = [s / p for s, p in zip(times["streaming"], times["plain"], strict=True)]
    ratio = statistics.median(ratios)
    cpu_ratios = [s / p for s, p in zip(cpu["streaming"], cpu["plain"], strict=True)]
    steps = len(plain.batches)
    return {
        "workload": asdict(wl) | {"name": wl.name},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "n": data.n,
        "steps_per_epoch": steps,
        "plain_s": times["plain"],
        "streaming_s": times["streaming"],
        "ratios": ratios,
        "median_ratio": ratio,
        "overhead_pct": 100 * (ratio - 1),
        "plain_cpu_s": cpu["plain"],
        "streaming_cpu_s": cpu["streaming"],
        "cpu_ratios": cpu_ratios,
        "loop_cpu_overhead_pct": 100 * (statistics.median(cpu_ratios) - 1),
        "plain_step_us": 1e6 * statistics.median(times["plain"]) / steps,
        "streaming_step_us": 1e6 * statistics.median(times["streaming"]) / steps,
        "samples_sent": client.sent_samples,
        "samples_ingested": ingested,
    }, done


def run(settings: Settings, out: Path, progress: ProgressFn) -> dict[str, Any]:
    devices = [torch.device("cpu")]
    gpu_note = "no GPU present: CPU only"
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
        gpu_note = f"GPU: {torch.cuda.get_device_name(0)}"
    total = len(devices) * len(settings.workloads) * (settings.reps + WARMUP_EPOCHS)
    rows, done = [], 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-overhead-") as snapshot_dir:
            for device in devices:
                for wl in settings.workloads:
                    row, done = _measure(wl, settings, device, snapshot_dir, progress, done, total)
                    rows.append(row)
    finally:
        torch.set_num_threads(threads)
    result = {
        "settings": asdict(settings),
        "torch_threads": 1,
        "gpu": gpu_note,
        "target_pct": TARGET_PCT,
        "rows": rows,
    }
    result["plot"] = plot(result, out)
    return result


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            r["workload"]["name"],
            r["device_name"],
            r["steps_per_epoch"],
            len(r["ratios"]),
            round(r["plain_step_us"], 1),
            round(r["streaming_step_us"], 1),
            f"{r['overhead_pct']:+.2f} %",
            f"{100 * (min(r['ratios']) - 1):+.1f} / {100 * (max(r['ratios']) - 1):+.1f} %",
            f"{r['loop_cpu_overhead_pct']:+.2f} %",
            "yes" if r["overhead_pct"] <= result["target_pct"] else "no",
        ]
        for r in result["rows"]
    ]
    head = [
        "workload",
        "device",
        "steps/epoch",
        "epoch pairs",
        "plain µs/step",
        "streaming µs/step",
        "wall overhead (median ratio)",
        "min / max pair",
        "training-thread CPU overhead",
        f"<= {result['target_pct']:g} %",
    ]
    return markdown_table(head, rows, "llrrrrrrrl") + f"\n\n{result['gpu']}."


def plot(result: dict[str, Any], out: Path) -> str | None:
    plt = pyplot()
    if plt is None:
        return None
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, r in enumerate(rows):
        pct = [100 * (x - 1) for x in r["ratios"]]
        ax.scatter(pct, [i] * len(pct), alpha=0.6, label=None)
        ax.plot([r["overhead_pct"]] * 2, [i - 0.3, i + 0.3], color="black")
    ax.axvline(result["target_pct"], color="red", linestyle="--", label=f"target {result['target_pct']:g} %")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{r['workload']['name']} ({r['device_name']})" for r in rows])
    ax.set_xlabel("streaming / plain wall time - 1 (%), one dot per epoch pair; bar: median")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4 if rows else 0.4)
    return save_figure(fig, out / "overhead.png")


def check(result: dict[str, Any]) -> list[str]:
    """Problems that make the numbers meaningless (not a slow result: that is reported, not failed)."""
    problems = []
    for r in result["rows"]:
        if r["samples_sent"] != r["samples_ingested"]:
            problems.append(
                f"{r['workload']['name']}: sent {r['samples_sent']}, ingested {r['samples_ingested']}"
            )
        if not all(math.isfinite(x) and x > 0 for x in r["ratios"]):
            problems.append(f"{r['workload']['name']}: non-positive time ratio")
    return problems

"""Cost of byproduct streaming inside the training loop.

Two identically initialized models train on the same data, batch size and fixed index order; one
of them also hands every step's per-sample loss, logits and labels to the real
``curriculum.recorder.Recorder`` (correctness is derived from the logits off the training thread),
which streams them to a real, durable store actor and flushes at the end of every epoch (as
``trainers.loop`` does at the end of every round). Epochs of the two alternate, and which goes first
alternates too; overheads are medians over epoch pairs of the ratio of the two, so drifts in machine
load hit both sides of a ratio alike.

Per workload: the wall-time overhead (with and without the end-of-epoch flush), the training
thread's own CPU time per sample (``time.thread_time``: what streaming costs the loop itself,
without waiting), the store actor's CPU time per sample (its whole process, Ray's threads
included, from /proc, less its idle CPU during the plain epochs) and what each end-of-epoch flush
waited for.

Torch runs one intra-op thread, as in a Ray Train worker with one CPU (Ray sets OMP_NUM_THREADS to
the worker's CPUs); on a shared machine more threads mostly measure contention. ``--gpu`` runs the
same workloads on a CUDA device (synchronized around each epoch).

    python -m trainers.benchmarks.overhead [--quick] [--gpu] [--out DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
import torch.nn.functional as F

from curriculum.recorder import Recorder
from curriculum.sampler import RoundSampler
from scorer_service.config import StoreConfig
from scorer_service.ray.actor import NAMESPACE, create_store
from trainers.benchmarks.harness import (
    Progress,
    ProgressFn,
    describe,
    drop_store,
    machine,
    markdown_table,
    pyplot,
    save_figure,
    start_local_ray,
    write_json,
)
from trainers.datasets import load_dataset
from trainers.networks import build_model

LR = 0.05
WARMUP_EPOCHS = 2


@dataclass(frozen=True)
class Workload:
    dataset: str
    model: str
    batch_size: int
    # Each row reshaped to this (C, H, W) for a convolutional model; None: rows as loaded.
    image: tuple[int, ...] | None = None
    # Most training-thread CPU overhead (percent) acceptable on this workload.
    target_pct: float = 3.0

    @property
    def name(self) -> str:
        shape = "x".join(map(str, self.image)) + " " if self.image else ""
        return f"{self.dataset.split(':')[0]} {shape}{self.model} b{self.batch_size}"


@dataclass
class Settings:
    workloads: tuple[Workload, ...]
    # Epoch pairs (one plain, one streaming epoch each) after the warm-up.
    reps: int
    device: str = "cpu"

    @classmethod
    def full(cls, device: str = "cpu") -> Settings:
        # The default run (digits, small MLP, batch 64) has the cheapest steps, so the largest share
        # of streaming cost; the larger MLP and the CNN show how that share shrinks with step cost.
        return cls(
            (
                Workload("digits", "mlp", 64, target_pct=8.0),
                Workload("synthetic:n=20000,dim=64", "mlp-large", 256),
                Workload("synthetic:n=8192,dim=256", "cnn", 64, image=(1, 16, 16)),
            ),
            reps=41,
            device=device,
        )

    @classmethod
    def quick(cls, device: str = "cpu") -> Settings:
        return cls((Workload("digits", "mlp", 64, target_pct=8.0),), reps=15, device=device)


class _Trainer:
    """One model and optimizer stepping through the fixed batch order, one epoch per call."""

    def __init__(self, wl: Workload, data: Any, order: np.ndarray, device: torch.device) -> None:
        torch.manual_seed(0)
        self.device = device
        shape = wl.image or data.input_shape
        self.net = build_model(wl.model, shape, data.num_classes).to(device)
        self.opt = torch.optim.SGD(
            self.net.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4, nesterov=True
        )
        x, y = data.train.batch(np.arange(data.n))
        self.x, self.y = x.reshape(data.n, *shape).to(device), y.to(device)
        # Ids as a data loader yields them: host arrays, one per batch.
        self.batches = [order[i : i + wl.batch_size] for i in range(0, len(order), wl.batch_size)]
        self.index = [torch.as_tensor(b, device=device) for b in self.batches]
        self.step = 0

    def epoch(self, recorder: Recorder | None) -> tuple[float, float, float]:
        """Wall seconds of one pass, including the end-of-round flush when streaming; the CPU seconds
        of the training thread itself (the loop's own work, without the waiting); the flush's wall
        seconds."""
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
            if recorder is not None:
                recorder.observe(ids, loss_i, logits=logits, labels=y, step=self.step, lr=LR)
            loss_sum += loss_i.detach().sum()
            self.step += 1
        flush = 0.0
        if recorder is not None:
            recorder.flush()
            flush = recorder.flush_seconds[-1]
        # The training loop reads the round's loss once (a device sync); both variants do it.
        float(loss_sum)
        self._sync()
        return time.perf_counter() - t0, time.thread_time() - c0, flush

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _actor_pid(_instance: Any) -> int:
    return os.getpid()


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        StoreConfig.create(n=data.n, epochs=1_000_000, run=run, method="random", snapshot_dir=snapshot_dir)
    )
    pid = ray.get(store.__ray_call__.remote(_actor_pid))
    sampler = RoundSampler(run, rank=0, world_size=1)
    recorder = sampler.recorder()
    # Two identically initialized models on identical batches do identical arithmetic, so one
    # epoch of each can alternate: load drifts then hit both sides of every ratio alike.
    plain, streaming = _Trainer(wl, data, order, device), _Trainer(wl, data, order, device)
    wall: dict[str, list[float]] = {"plain": [], "streaming": []}
    cpu: dict[str, list[float]] = {"plain": [], "streaming": []}
    flush: list[float] = []
    store_cpu = {"plain": 0.0, "streaming": 0.0}
    try:
        for rep in range(-WARMUP_EPOCHS, settings.reps):
            pair = [("plain", plain, None), ("streaming", streaming, recorder)]
            sampler.set_epoch(rep + WARMUP_EPOCHS)  # the round the byproducts belong to
            for name, trainer, r in pair if rep % 2 == 0 else pair[::-1]:
                before = _process_cpu_s(pid)
                seconds, cpu_seconds, flush_seconds = trainer.epoch(r)
                if rep >= 0:
                    wall[name].append(seconds)
                    cpu[name].append(cpu_seconds)
                    store_cpu[name] += _process_cpu_s(pid) - before
                    if r is not None:
                        flush.append(flush_seconds)
            done += 1
            progress("overhead", done, total, f"{wl.name} on {device.type}")
        ingested = ray.get(store.info.remote()).ingested
    finally:
        drop_store(run)
    ratios = [s / p for s, p in zip(wall["streaming"], wall["plain"], strict=True)]
    no_flush = [(s - f) / p for s, f, p in zip(wall["streaming"], flush, wall["plain"], strict=True)]
    cpu_ratios = [s / p for s, p in zip(cpu["streaming"], cpu["plain"], strict=True)]
    steps, samples = len(plain.batches), data.n
    return {
        "workload": asdict(wl) | {"name": wl.name},
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "n": data.n,
        "steps_per_epoch": steps,
        "plain_s": wall["plain"],
        "streaming_s": wall["streaming"],
        "flush_s": flush,
        "ratios": ratios,
        "median_ratio": statistics.median(ratios),
        "overhead_pct": 100 * (statistics.median(ratios) - 1),
        "overhead_without_flush_pct": 100 * (statistics.median(no_flush) - 1),
        "plain_cpu_s": cpu["plain"],
        "streaming_cpu_s": cpu["streaming"],
        "cpu_ratios": cpu_ratios,
        "loop_cpu_overhead_pct": 100 * (statistics.median(cpu_ratios) - 1),
        "plain_cpu_us_per_sample": 1e6 * statistics.median(cpu["plain"]) / samples,
        "streaming_cpu_us_per_sample": 1e6 * statistics.median(cpu["streaming"]) / samples,
        # The store's CPU while streaming, less what it spends idle (Ray's own threads) in plain epochs.
        "store_cpu_us_per_sample": 1e6
        * (store_cpu["streaming"] - store_cpu["plain"])
        / (samples * settings.reps),
        "store_idle_cpu_s_per_epoch": store_cpu["plain"] / settings.reps,
        "flush_ms_median": 1e3 * statistics.median(flush),
        "flush_ms_max": 1e3 * max(flush),
        "flush_share_pct": 100
        * statistics.median(f / s for f, s in zip(flush, wall["streaming"], strict=True)),
        "plain_step_us": 1e6 * statistics.median(wall["plain"]) / steps,
        "streaming_step_us": 1e6 * statistics.median(wall["streaming"]) / steps,
        "samples_sent": recorder.sent_samples,
        "samples_ingested": ingested,
    }, done


def run(settings: Settings, out: Path, progress: ProgressFn) -> dict[str, Any]:
    device = torch.device(settings.device)
    rows, done = [], 0
    total = len(settings.workloads) * (settings.reps + WARMUP_EPOCHS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-overhead-") as snapshot_dir:
            for wl in settings.workloads:
                row, done = _measure(wl, settings, device, snapshot_dir, progress, done, total)
                rows.append(row)
    finally:
        torch.set_num_threads(threads)
    gpu = f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU present"
    result = {
        "settings": asdict(settings),
        "torch_threads": 1,
        "gpu": gpu,
        "load_avg": list(os.getloadavg()),
        "rows": rows,
    }
    result["plot"] = plot(result, out)
    return result


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            r["workload"]["name"],
            r["device_name"],
            f"{r['steps_per_epoch']} / {r['n']:,}",
            len(r["ratios"]),
            round(r["plain_step_us"]),
            f"{r['overhead_pct']:+.1f} % ({r['overhead_without_flush_pct']:+.1f} %)",
            f"{r['plain_cpu_us_per_sample']:.2f} / {r['streaming_cpu_us_per_sample']:.2f}",
            f"{r['loop_cpu_overhead_pct']:+.2f} %",
            _target(r),
            round(r["store_cpu_us_per_sample"], 2),
            f"{r['flush_ms_median']:.1f} / {r['flush_ms_max']:.1f}",
            f"{r['flush_share_pct']:.1f} %",
        ]
        for r in result["rows"]
    ]
    head = [
        "workload",
        "device",
        "steps / samples per epoch",
        "epoch pairs",
        "plain µs/step",
        "wall overhead (without the flush)",
        "training-thread CPU µs/sample plain / streaming",
        "training-thread CPU overhead",
        "target met",
        "store CPU µs/sample",
        "flush ms per round (median / max)",
        "flush share of a streaming epoch",
    ]
    note = f"{result['gpu']}; 1-minute load average {result['load_avg'][0]:.1f} at the end."
    return markdown_table(head, rows, "llrrrrrrlrrr") + f"\n\n{note}"


def _target(row: dict[str, Any]) -> str:
    target = row["workload"]["target_pct"]
    return f"<= {target:g} %: {'yes' if row['loop_cpu_overhead_pct'] <= target else 'no'}"


def plot(result: dict[str, Any], out: Path) -> str | None:
    plt = pyplot()
    if plt is None:
        return None
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for i, r in enumerate(rows):
        wall = [100 * (x - 1) for x in r["ratios"]]
        cpu = [100 * (x - 1) for x in r["cpu_ratios"]]
        ax.scatter(
            wall, [i + 0.12] * len(wall), alpha=0.5, color="tab:blue", label="wall" if i == 0 else None
        )
        ax.scatter(
            cpu,
            [i - 0.12] * len(cpu),
            alpha=0.5,
            color="tab:orange",
            label="training-thread CPU" if i == 0 else None,
        )
        ax.plot([r["loop_cpu_overhead_pct"]] * 2, [i - 0.3, i + 0.06], color="black")
        ax.plot([r["workload"]["target_pct"]] * 2, [i - 0.4, i + 0.4], color="red", linestyle="--")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{r['workload']['name']} ({r['device_name']})" for r in rows])
    ax.set_xlabel("streaming / plain - 1 (%), one dot per epoch pair; black: CPU median; red: target")
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
        if not all(math.isfinite(x) and x > 0 for x in r["ratios"] + r["cpu_ratios"]):
            problems.append(f"{r['workload']['name']}: non-positive time ratio")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainers.benchmarks.overhead", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="the digits workload only, 15 epoch pairs")
    p.add_argument("--gpu", action="store_true", help="train on the CUDA device instead of the CPU")
    p.add_argument(
        "--out", type=Path, default=Path("bench_out"), help="folder for overhead.json and the plot"
    )
    args = p.parse_args(argv)
    if args.gpu and not torch.cuda.is_available():
        print("--gpu: no CUDA device on this machine; nothing measured", file=sys.stderr)
        return 0
    device = "cuda" if args.gpu else "cpu"
    settings = Settings.quick(device) if args.quick else Settings.full(device)
    info = machine()
    print(f"# {describe(info)}", flush=True)
    start_local_ray(NAMESPACE)
    try:
        t0 = time.perf_counter()
        result = run(settings, args.out, Progress())
        result["wall_s"] = time.perf_counter() - t0
    finally:
        ray.shutdown()
    result["table"], result["problems"] = table(result), check(result)
    write_json(args.out / ("overhead-gpu.json" if args.gpu else "overhead.json"), {"machine": info, **result})
    print(result["table"])
    for problem in result["problems"]:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

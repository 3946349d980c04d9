"""Trainer memory on a large image dataset read by row: each worker reads only its shard's rows.

    python -m trainers.benchmarks.data_path [--gib 2.2] [--quick] [--json PATH]

Writes a directory dataset (``x.npy``: N x 3 x 32 x 32 float32 images, ``y.npy``), then trains
``curriculum train``'s recipe on it (``run_training``: 2 Ray Train workers, the mlp model, 2 rounds of
which the first is a warm start on all data) and, in the same process, on a 2,000-row dataset of the
same row shape. A thread polls the resident memory (RSS) of every Ray Train worker every 0.1 s; the
growth per worker is its peak on the large dataset minus the peak on the small one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

from trainers.benchmarks.harness import drop_store, machine, markdown_table, start_local_ray  # noqa: E402
from trainers.driver import run_training  # noqa: E402
from trainers.train_config import TrainConfig  # noqa: E402

ROW = (3, 32, 32)


def write_images(path: Path, rows: int, chunk: int = 8192) -> int:
    """A directory dataset of ``rows`` random images (10 classes); returns x.npy's size in bytes."""
    path.mkdir(parents=True)
    x = np.lib.format.open_memmap(path / "x.npy", mode="w+", dtype=np.float32, shape=(rows, *ROW))
    rng = np.random.default_rng(0)
    for i in range(0, rows, chunk):
        x[i : i + chunk] = rng.standard_normal((min(chunk, rows - i), *ROW), dtype=np.float32)
    x.flush()
    del x
    np.save(path / "y.npy", np.arange(rows) % 10)
    return (path / "x.npy").stat().st_size


def train_worker_rss(raylet: int) -> dict[int, int]:
    """Resident bytes of the Ray Train worker processes that ``raylet`` started (Linux /proc): not
    those of another Ray instance on the same machine."""
    out = {}
    for entry in Path("/proc").iterdir():
        try:
            if (
                not entry.name.isdigit()
                or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != raylet
            ):
                continue
            if b"ray::RayTrainWorker" in (entry / "cmdline").read_bytes():
                status = (entry / "status").read_text()
                kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
                out[int(entry.name)] = int(kib) * 1024
        except (OSError, StopIteration):
            continue
    return out


class RssPoller:
    """Peak resident memory of every Ray Train worker process while it runs."""

    def __init__(self, interval: float = 0.1) -> None:
        import ray

        self.interval, self.peaks = interval, {}
        self.raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for pid, rss in train_worker_rss(self.raylet).items():
                self.peaks[pid] = max(self.peaks.get(pid, 0), rss)
            time.sleep(self.interval)

    def __enter__(self) -> RssPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def measure(dataset: Path, run: str, storage: str) -> dict[str, Any]:
    cfg = TrainConfig.create(
        run=run,
        dataset=str(dataset),
        model="mlp",
        epochs=2,
        warm_start=1,
        cycle_length=1,
        batch_size=256,
        workers=2,
        snapshot_dir=f"{storage}/snapshots",
        storage_path=f"{storage}/checkpoints",
    )
    t0 = time.perf_counter()
    try:
        with RssPoller() as poller:
            summary = run_training(cfg, out=lambda _line: None)
    finally:
        drop_store(run)
    return {
        "peaks": sorted(poller.peaks.values()),
        "sample_passes": summary["sample_passes"],
        "wall_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainers.benchmarks.data_path", description=__doc__.splitlines()[0]
    )
    p.add_argument("--gib", type=float, default=2.2, help="size of the image array in GiB")
    p.add_argument("--quick", action="store_true", help="a 0.25 GiB array")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    gib = 0.25 if args.quick else args.gib
    rows = int(gib * 2**30 / (4 * np.prod(ROW)))
    tmp = Path(tempfile.mkdtemp(prefix="curriculum-bench-data-"))
    try:
        size = write_images(tmp / "large", rows)
        write_images(tmp / "small", 2000)
        start_local_ray("curriculum", num_cpus=2)
        small = measure(tmp / "small", f"bench-data-small-{os.getpid()}", str(tmp))
        large = measure(tmp / "large", f"bench-data-large-{os.getpid()}", str(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = max(small["peaks"])
    growth = [peak - base for peak in large["peaks"]]
    table = markdown_table(
        ["dataset", "rows", "x.npy", "workers", "peak RSS per worker", "growth over small", "growth / data"],
        [
            ["small", "2,000", f"{2000 * 4 * np.prod(ROW) / 2**20:.0f} MiB", len(small["peaks"]),
             ", ".join(f"{b / 2**20:.0f} MiB" for b in small["peaks"]), "", ""],
            ["large", f"{rows:,}", f"{size / 2**30:.2f} GiB", len(large["peaks"]),
             ", ".join(f"{b / 2**20:.0f} MiB" for b in large["peaks"]),
             ", ".join(f"{g / 2**20:+.0f} MiB" for g in growth),
             ", ".join(f"{g / size:.1%}" for g in growth)],
        ],
    )  # fmt: skip
    print(f"{machine()}\n{table}\nsample passes on the large dataset: {large['sample_passes']:,}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "bytes": size, "rows": rows, "small": small, "large": large}, f)
    if max(growth) >= size / 4:
        raise SystemExit(f"a worker grew by {max(growth) / 2**20:.0f} MiB, a quarter of the data or more")
    print("ok: every worker grew by less than a quarter of the dataset")
    return 0


if __name__ == "__main__":
    sys.exit(main())

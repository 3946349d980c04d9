"""Your own model, data and Ray Train loop; the curriculum store decides what each rank trains on.

python examples/own_ray_train_loop.py --samples 2000 --epochs 8 --workers 2 --serve 8000
"""

from __future__ import annotations

import argparse
import os
import tempfile

import ray.train
import torch
import torch.nn.functional as F
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer, prepare_model
from torch import nn
from torch.utils.data import DataLoader, Dataset

import curriculum


class Images(Dataset):
    """3 x 16 x 16 images of 10 classes; the label is a known function of the id: id % 10."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.patterns = torch.randn(10, 3, 16, 16, generator=g)
        self.noise = torch.randn(n, 3, 16, 16, generator=g)

    def __len__(self) -> int:
        return len(self.noise)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.patterns[i % 10] + 2.0 * self.noise[i], i % 10


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 10),
    )  # fmt: skip


def train_loop_per_worker(config: dict) -> None:
    torch.manual_seed(0)
    model = prepare_model(cnn())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sampler = curriculum.RoundSampler(config["run"])  # rank and world size from Ray Train
    recorder = sampler.recorder(optimizer)  # step and learning rate from the optimizer
    if checkpoint := ray.train.get_checkpoint():  # a restarted attempt: the store rewinds with it
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, "state.pt"))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
    loader = DataLoader(curriculum.WithIds(Images(config["samples"])), 32, sampler=sampler, num_workers=2)
    for rnd in range(sampler.start_round, sampler.epochs):
        sampler.set_epoch(rnd)  # this rank's slice of round rnd
        for ids, x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y, reduction="none")
            optimizer.zero_grad()
            (sampler.weights(ids) * loss).mean().backward()  # weights: 1 unless the method reweights
            optimizer.step()
            recorder.observe(ids, loss, logits=logits, labels=y)
        recorder.end_round({"train_loss": float(loss.mean())})  # flush, barrier, record
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if sampler.rank == 0:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
                torch.save(state | {"sampler": sampler.state_dict()}, os.path.join(d, "state.pt"))
                checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report({"round": rnd}, checkpoint=checkpoint)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="own-loop")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-failures", type=int, default=1)
    p.add_argument("--storage-path", default=os.path.expanduser("~/ray_results"))
    p.add_argument("--address", default=None, help="Ray cluster (default: RAY_ADDRESS or a local one)")
    p.add_argument("--serve", type=int, default=0, metavar="PORT", help="then serve the REST API on PORT")
    args = p.parse_args(argv)
    curriculum.connect(args.address)
    run = curriculum.create_run(
        args.run, n=args.samples, num_classes=10, epochs=args.epochs, warm_start=2, cycle_length=2
    )
    TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run": run.name, "samples": args.samples},
        scaling_config=ScalingConfig(num_workers=args.workers),
        run_config=RunConfig(
            # This run only: Ray Train restores it on failure.
            name=f"{run.name}-{run.config.durability.incarnation}",
            storage_path=args.storage_path,
            failure_config=FailureConfig(max_failures=args.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    ).fit()
    info = run.info()
    print(f"run {run.name}: {info.rounds_completed} rounds, {info.ingested} byproducts ingested")
    if args.serve:  # the REST API on this cluster; it keeps serving after this driver ends
        url = curriculum.serve(port=args.serve)
        hardest = curriculum.Client(url, run=run.name).top("dih", k=3)
        print(f"REST API at {url}; hardest now: {' '.join(str(s.id) for s in hardest)}")


if __name__ == "__main__":
    main()

"""Plain PyTorch DDP started by torchrun: every process joins the Ray cluster as a driver.

torchrun --nproc_per_node 2 examples/torchrun_ddp.py --address auto --samples 2000 --epochs 8
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from own_ray_train_loop import Images, cnn  # the same data and model as the Ray Train example
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import curriculum


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default="torchrun-ddp", help="run name")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--address", default=None, help="Ray cluster (default: RAY_ADDRESS)")
    args = p.parse_args()
    dist.init_process_group("gloo")
    curriculum.connect(args.address)
    if dist.get_rank() == 0:
        curriculum.create_run(
            args.name, n=args.samples, num_classes=10, epochs=args.epochs, warm_start=2, cycle_length=2
        )
    dist.barrier()  # the run exists before any rank asks for its slice

    torch.manual_seed(0)
    model = DistributedDataParallel(cnn())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sampler = curriculum.RoundSampler(args.name)  # rank and world size from torch.distributed
    recorder = sampler.recorder(optimizer)
    loader = DataLoader(curriculum.WithIds(Images(args.samples)), 32, sampler=sampler)
    for rnd in range(sampler.start_round, sampler.epochs):
        sampler.set_epoch(rnd)
        for ids, x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y, reduction="none")
            optimizer.zero_grad()
            (sampler.weights(ids) * loss).mean().backward()  # weights: 1 unless the method reweights
            optimizer.step()
            recorder.observe(ids, loss, logits=logits, labels=y)
        recorder.end_round({"train_loss": float(loss.mean())})
    if dist.get_rank() == 0:
        info = curriculum.attach_run(args.name).info()
        print(f"run {args.name}: {info.rounds_completed} rounds, {info.ingested} byproducts ingested")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

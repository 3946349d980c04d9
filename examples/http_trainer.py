"""A trainer outside the Ray cluster, talking to the store over HTTP only (this process never imports Ray).

A regression (no notion of a correct prediction: the run is created with correct=False) with a
learning-rate warm-up that starts at 0. The run must exist (``curriculum.create_run(...,
correct=False)`` on the cluster) and the REST API must serve it with a bearer token.

    python examples/http_trainer.py --api http://127.0.0.1:8000 --run http-regression --token $TOKEN
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import curriculum


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--api", required=True, help="the REST API, e.g. http://127.0.0.1:8000")
    p.add_argument("--run", required=True)
    p.add_argument("--token", required=True, help="the API's bearer token (CURRICULUM_API_TOKEN)")
    p.add_argument("--warmup-steps", type=int, default=20)
    args = p.parse_args(argv)

    store = curriculum.HttpEndpoint(args.api, args.run, token=args.token)
    sampler = curriculum.RoundSampler(store, rank=0, world_size=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sampler.config["n"], 8, generator=g)
    y = x @ torch.randn(8, generator=g) + 0.1 * torch.randn(len(x), generator=g)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    recorder = sampler.recorder(optimizer)
    loader = DataLoader(curriculum.WithIds(TensorDataset(x, y)), batch_size=32, sampler=sampler)
    for rnd in range(sampler.start_round, sampler.epochs):
        sampler.set_epoch(rnd)
        for ids, xb, yb in loader:
            # Warm-up from lr = 0: the store accepts it, and a step at lr 0 moves no score.
            optimizer.param_groups[0]["lr"] = 0.05 * min(1.0, sampler.step / args.warmup_steps)
            loss = F.mse_loss(model(xb).squeeze(1), yb, reduction="none")
            optimizer.zero_grad()
            loss.mean().backward()
            optimizer.step()
            recorder.observe(ids, loss)  # no correct=: regression
        recorder.end_round({"train_mse": float(loss.mean())})
    info = store.call("info")
    print(f"run {args.run}: {info['rounds_completed']} rounds, {info['ingested']} byproducts ingested")
    store.close()


if __name__ == "__main__":
    main()

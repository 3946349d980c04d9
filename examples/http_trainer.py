"""A trainer outside the Ray cluster, talking to the store over HTTP only (this process never imports Ray).

A regression (no notion of a correct prediction: the run is created with correct=False) with a
learning-rate warm-up that starts at 0, and every 20th target corrupted: the store's noise column
finds those, and ``curriculum.Client`` reads them as label issues. The REST API must serve the run's
store (``curriculum.serve`` on the cluster); with ``--create N`` this process creates the run over
REST first (an admin token), with ``--delete`` it deletes it at the end.

    python examples/http_trainer.py --api http://127.0.0.1:8000 --run http-regression --token $TOKEN \
        --create 300 --delete
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
    p.add_argument("--create", type=int, default=0, metavar="N", help="create the run (N samples) over REST")
    p.add_argument("--delete", action="store_true", help="delete the run over REST at the end")
    args = p.parse_args(argv)

    client = curriculum.Client(args.api, token=args.token)
    if args.create:
        info = client.create_run(
            args.run, args.create, epochs=4, warm_start=1, cycle_length=1, correct=False
        ).info()
        print(f"created run {info.run}: {info.n} samples, {info.epochs} rounds of {info.method}")
    store = curriculum.HttpEndpoint(args.api, args.run, token=args.token)
    sampler = curriculum.RoundSampler(store, rank=0, world_size=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(sampler.config["n"], 8, generator=g)
    y = x @ torch.randn(8, generator=g) + 0.1 * torch.randn(len(x), generator=g)
    y[::20] += 30.0  # corrupted targets: the label issues to find
    torch.manual_seed(0)  # the same initial model, so a rerun flags the same label issues
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
        recorder.end_round({"train_mse": float(loss.detach().mean())})
    info = store.info()
    print(f"run {args.run}: {info.rounds_completed} rounds, {info.ingested} byproducts ingested")
    store.close()
    run = curriculum.Client(args.api, token=args.token, run=args.run)
    issues = run.label_issues(limit=15)
    print(f"label issues: {' '.join(str(i.id) for i in issues)}")
    if args.delete:
        run.delete()
        print(f"deleted run {args.run}")
    run.close()
    client.close()


if __name__ == "__main__":
    main()

"""``train_loop_per_worker`` for ``ray.train.torch.TorchTrainer``: the curriculum training recipe.

Reads top to bottom: build data, model and optimizer; then per round, ask the store for this
rank's shard, train on it while streaming per-sample byproducts of the very forward pass used
for the gradient, flush, evaluate, report.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F

from scorer_service.actor import get_store
from scorer_service.schedule import cyclic_cosine_lr
from trainers.client import StoreClient
from trainers.config import TrainConfig
from trainers.datasets import load_dataset
from trainers.models import build_model


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    model.train()
    return correct / max(1, len(y))


def _global_mean(total: float, count: int, device: torch.device) -> float:
    """Mean over all ranks; the all-reduce is also the barrier that orders every rank's flush
    before any rank requests the next round's subset."""
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(1, count)


def _save_checkpoint(model: torch.nn.Module, opt: torch.optim.Optimizer, round_: int, step: int):
    path = tempfile.mkdtemp(prefix="curriculum-ckpt-")
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "round": round_, "step": step}
    torch.save(state, os.path.join(path, "state.pt"))
    return ray.train.Checkpoint.from_directory(path)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    cfg = TrainConfig.from_dict(config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)
    cycles = cfg.store_config(1).cycles

    data = load_dataset(cfg.dataset, cfg.seed)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    net = build_model(cfg.model, data.input_dim, data.num_classes)
    model = ray.train.torch.prepare_model(net)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr_max, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )

    start_round, step = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, "state.pt"), map_location=device)
        getattr(model, "module", model).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_round, step = state["round"] + 1, state["step"]

    store = get_store(cfg.run)
    client = StoreClient(store, rank, flush_samples=cfg.flush_samples, max_in_flight=cfg.max_in_flight)

    for round_ in range(start_round, cfg.epochs):
        shard = ray.get(store.subset.remote(round_, rank, world))
        # A per-round, per-rank shuffle: batches mix easy and hard samples of the shard.
        order = np.random.default_rng([cfg.seed, round_, rank]).permutation(len(shard))
        ids = shard[order]
        steps = math.ceil(len(ids) / cfg.batch_size)
        # Kept on the device: a float() per step would synchronize a GPU every step.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for b in range(steps):
            lr = cyclic_cosine_lr(cycles, round_, b / steps, cfg.lr_max, cfg.lr_min, cfg.lr_decay)
            for group in opt.param_groups:
                group["lr"] = lr
            batch_ids = ids[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            index = torch.as_tensor(batch_ids, device=device)
            x, y = x_train[index], y_train[index]
            logits = model(x)
            loss_i = F.cross_entropy(logits, y, reduction="none")
            opt.zero_grad(set_to_none=True)
            loss_i.mean().backward()
            opt.step()
            client.add(round_, step, lr, batch_ids, loss_i, logits.argmax(1) == y)
            loss_sum += loss_i.detach().sum()
            step += 1
        client.flush()
        train_loss = _global_mean(float(loss_sum), len(ids), device)

        metrics = {"round": round_, "train_loss": train_loss, "samples": len(ids) * world, "step": step}
        ckpt = None
        if rank == 0:
            metrics["test_accuracy"] = evaluate(getattr(model, "module", model), x_test, y_test)
            ray.get(store.record_round.remote(round_, metrics))
            ckpt = _save_checkpoint(getattr(model, "module", model), opt, round_, step)
        ray.train.report(metrics, checkpoint=ckpt)

"""``train_loop_per_worker`` for ``ray.train.torch.TorchTrainer``: the curriculum training recipe.

Reads top to bottom: build data, model and optimizer; then per round, ask the store for this
rank's shard, train on it while streaming per-sample byproducts of the very forward pass used
for the gradient, flush, evaluate, report. Optional components (Data Parameters, LeRaC, DoCL
output sketches, embedding sketches for diversity) plug in where the config asks for them.
"""

from __future__ import annotations

import math
import os
import tempfile
from types import SimpleNamespace
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from scorer_service.core.docl import OutputSketch
from scorer_service.ray.actor import get_store
from scorer_service.selection.schedule import cyclic_cosine_lr
from trainers import data_parameters as dp
from trainers.client import StoreClient
from trainers.config import TrainConfig
from trainers.datasets import load_dataset
from trainers.lerac import LeRaCScheduler, depth_param_groups
from trainers.models import build_model


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    model.train()
    return correct / max(1, len(y))


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _global_mean(total: float, count: int, device: torch.device) -> float:
    """Mean over all ranks; the all-reduce is also the barrier that orders every rank's flush
    before any rank requests the next round's subset."""
    if _distributed():
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(1, count)


def _classifier(net: nn.Module) -> nn.Linear:
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("embedding byproducts need a model whose last layer is nn.Linear")
    return linears[-1]


class OutputByproducts:
    """DoCL byproducts from logits already computed: the logits and the residual onehot(y) - softmax(z),
    exact for <= 128 classes, else both projected by the run's fixed random matrix (on the device)."""

    def __init__(self, num_classes: int, dim: int, seed: int, device: torch.device) -> None:
        sketch = OutputSketch(num_classes, dim, seed)
        self.matrix = None if sketch.exact else torch.as_tensor(sketch.matrix, device=device)

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        z = logits.detach().float()
        r = F.one_hot(y, z.shape[1]).float() - z.softmax(1)
        if self.matrix is None:
            return {"logit_sketch": z, "residual_sketch": r}
        return {"logit_sketch": (z @ self.matrix).half(), "residual_sketch": (r @ self.matrix).half()}


class EmbeddingByproduct:
    """A fixed random projection of the penultimate features, captured by a hook on the classifier's
    input: it sees the training forward pass through DDP (no extra forward, no bypassed hooks)."""

    def __init__(self, net: nn.Module, dim: int, seed: int, device: torch.device) -> None:
        head = _classifier(net)
        g = torch.Generator().manual_seed(seed + 7919)
        self.matrix = (torch.randn(head.in_features, dim, generator=g) / math.sqrt(dim)).to(device)
        self.features: torch.Tensor | None = None
        head.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.features = inputs[0]

    def __call__(self) -> dict[str, torch.Tensor]:
        return {"embedding": (self.features.detach().float() @ self.matrix).half()}


def _save_checkpoint(state: dict[str, Any]) -> ray.train.Checkpoint:
    path = tempfile.mkdtemp(prefix="curriculum-ckpt-")
    torch.save(state, os.path.join(path, "state.pt"))
    return ray.train.Checkpoint.from_directory(path)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    cfg = TrainConfig.from_dict(config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)

    data = load_dataset(cfg.dataset, cfg.seed)
    cycles = cfg.store_config(data.n, data.num_classes).cycles
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)

    net = build_model(cfg.model, data.input_dim, data.num_classes)
    embed = EmbeddingByproduct(net, cfg.sketch_dim, cfg.seed, device) if cfg.tracks_embeddings else None
    outputs = (
        OutputByproducts(data.num_classes, cfg.sketch_dim, cfg.seed, device) if cfg.tracks_outputs else None
    )
    groups = depth_param_groups(net, cfg.lr_max) if cfg.lerac else [{"params": list(net.parameters())}]
    model = ray.train.torch.prepare_model(net)
    opt = torch.optim.SGD(
        groups, lr=cfg.lr_max, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )
    # LeRaC as per-group multipliers on the normal schedule: the scheduler runs on a shadow copy
    # of the groups' learning rates, so the cosine schedule and LeRaC's warm-up compose.
    lerac = LeRaCScheduler(SimpleNamespace(param_groups=[{"lr": g["lr"]} for g in groups]), cfg.lr_max)

    mode = cfg.data_params
    class_dp = dp.ClassDataParameters(data.num_classes).to(device) if mode in ("class", "joint") else None
    class_opt = dp.SparseSGD(class_dp.parameters(), lr=dp.CLASS_LR) if class_dp is not None else None

    start_round, step = 0, 0
    # Ray Train's own checkpoint (a restart within this run) wins over the one a resumed run started from.
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and cfg.resume_checkpoint:
        checkpoint = ray.train.Checkpoint(cfg.resume_checkpoint)
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, "state.pt"), map_location=device)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if class_dp is not None:
            class_dp.load_state_dict(state["class_dp"])
            class_opt.load_state_dict(state["class_opt"])
        start_round, step = state["round"] + 1, state["step"]
    for _ in range(start_round):
        lerac.step_epoch()

    store = get_store(cfg.run)
    # The store may be ahead of this attempt (a lost attempt ingested and selected more, possibly
    # before any checkpoint existed): rank 0 returns it to the end of the round this attempt
    # starts after, before any rank asks for a shard.
    if rank == 0 and not ray.get(store.rewind.remote(start_round - 1)):
        print("warning: the store keeps no snapshots; scores include the lost attempt's observations")
    if _distributed():
        dist.barrier()
    client = StoreClient(store, rank, flush_samples=cfg.flush_samples, max_in_flight=cfg.max_in_flight)

    for round_ in range(start_round, cfg.epochs):
        shard = ray.get(store.subset.remote(round_, rank, world))
        inst = None
        if mode in ("instance", "joint"):
            p = ray.get(store.parameters.remote(shard))
            inst = dp.InstanceParameters(p["log_sigma"], p["log_sigma_momentum"], device=device)
        # A per-round, per-rank shuffle: batches mix easy and hard samples of the shard.
        order = np.random.default_rng([cfg.seed, round_, rank]).permutation(len(shard))
        steps = math.ceil(len(shard) / cfg.batch_size)
        factors = [lr / cfg.lr_max for lr in lerac.lrs()]
        # Kept on the device: a float() per step would synchronize a GPU every step.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for b in range(steps):
            lr = cyclic_cosine_lr(cycles, round_, b / steps, cfg.lr_max, cfg.lr_min, cfg.lr_decay)
            for group, f in zip(opt.param_groups, factors, strict=True):
                group["lr"] = lr * f
            pos = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch_ids = shard[pos]
            index = torch.as_tensor(batch_ids, device=device)
            x, y = x_train[index], y_train[index]
            logits = model(x)
            extra: dict[str, torch.Tensor] = {}
            if mode is None:
                loss_i = F.cross_entropy(logits, y, reduction="none")
                loss = loss_i.mean()
            else:
                cls_ls = class_dp(y) if class_dp is not None else None
                inst_ls = inst.for_batch(pos) if inst is not None else None
                sigma = dp.effective_sigma(mode, cls_ls, inst_ls)
                loss, loss_i = dp.data_parameter_loss(logits, y, sigma, cls_ls, inst_ls)
            opt.zero_grad(set_to_none=True)
            if class_opt is not None:
                class_opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            if class_opt is not None:
                if _distributed():
                    # Class temperatures are shared by all ranks; absent classes keep a zero gradient.
                    dist.all_reduce(class_dp.log_sigma.grad)
                    class_dp.log_sigma.grad /= world
                class_opt.step()
            if inst is not None:
                inst.step(pos, inst_ls.grad, dp.INSTANCE_LR)
                p_pos = torch.as_tensor(pos, device=device)
                extra |= {"log_sigma": inst.log_sigma[p_pos], "log_sigma_momentum": inst.momentum[p_pos]}
            if outputs is not None:
                extra |= outputs(logits, y)
            if embed is not None:
                extra |= embed()
            client.add(round_, step, lr, batch_ids, loss_i, logits.argmax(1) == y, extra)
            loss_sum += loss_i.detach().sum()
            step += 1
        client.flush()
        lerac.step_epoch()
        train_loss = _global_mean(float(loss_sum), len(shard), device)

        metrics = {"round": round_, "train_loss": train_loss, "samples": len(shard) * world, "step": step}
        ckpt = None
        if rank == 0:
            metrics["test_accuracy"] = evaluate(net, x_test, y_test)
            ray.get(store.record_round.remote(round_, metrics))
            state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "round": round_, "step": step}
            if class_dp is not None:
                state |= {"class_dp": class_dp.state_dict(), "class_opt": class_opt.state_dict()}
            ckpt = _save_checkpoint(state)
        ray.train.report(metrics, checkpoint=ckpt)

"""``train_loop_per_worker`` for ``ray.train.torch.TorchTrainer``: the curriculum training recipe.

It uses only the public API (``RoundSampler``, its ``Recorder``) and reads top to bottom: build
data, model and optimizer; restore from a checkpoint; then per round, fetch this rank's slice,
train on it while recording per-sample byproducts of the very forward pass used for the gradient,
end the round (flush, barrier, record), checkpoint. Optional components (Data Parameters, LeRaC,
embedding features for diversity) plug in where the config asks for them.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from curriculum._internal.step_byproducts import PenultimateFeatures
from curriculum.ids import WithIds
from curriculum.sampler import RoundSampler
from scorer_service.selection.schedule import cyclic_cosine_lr
from trainers import data_parameters as dp
from trainers.datasets import ArrayDataset, load_dataset
from trainers.lerac import LeRaCScheduler, depth_param_groups
from trainers.networks import build_model
from trainers.plain import PlainSampler
from trainers.resume import starting_checkpoint, write_checkpoint_meta
from trainers.train_config import TrainConfig


def evaluate(model: nn.Module, data: ArrayDataset, device: torch.device, batch: int = 4096) -> float:
    """Top-1 accuracy of ``model`` on ``data``, read and evaluated ``batch`` rows at a time."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            x, y = data.batch(np.arange(i, min(i + batch, len(data))))
            correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
    model.train()
    return correct / max(1, len(data))


def _global_mean(total: float, count: int, device: torch.device) -> float:
    """Mean over all ranks."""
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(1, count)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    cfg = TrainConfig.from_dict(config)
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)

    data = load_dataset(cfg.dataset, cfg.seed)
    cycles = cfg.store_config(data.n, data.num_classes).cycles
    net = build_model(cfg.model, data.input_shape, data.num_classes)
    features = PenultimateFeatures(net) if cfg.tracks_embeddings else None
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

    if cfg.plain:
        sampler: RoundSampler | PlainSampler = PlainSampler(data.n, cfg.epochs, run=cfg.run, seed=cfg.seed)
    else:
        sampler = RoundSampler(cfg.run)
    recorder = sampler.recorder(
        opt, flush_samples=cfg.flush_samples, flush_every_s=cfg.flush_every_s, max_in_flight=cfg.max_in_flight
    )
    checkpoint = starting_checkpoint(cfg)
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, "state.pt"), map_location=device)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if class_dp is not None:
            class_dp.load_state_dict(state["class_dp"])
            class_opt.load_state_dict(state["class_opt"])
        sampler.load_state_dict(state["sampler"])
    for _ in range(sampler.start_round):
        lerac.step_epoch()
    # Batches of ids go to the dataset whole: one read per batch, only of this rank's rows.
    batches = torch.utils.data.BatchSampler(sampler, cfg.batch_size, drop_last=False)
    loader = torch.utils.data.DataLoader(
        WithIds(data.train), sampler=batches, batch_size=None, num_workers=cfg.loader_workers
    )

    for round_ in range(sampler.start_round, cfg.epochs):
        started = time.time()  # wall clock: the rounds' times line up with the driver's
        sampler.set_epoch(round_)
        inst = None
        if mode in ("instance", "joint"):
            p = sampler.parameters()
            inst = dp.InstanceParameters(p["log_sigma"], p["log_sigma_momentum"], device=device)
        steps = math.ceil(len(sampler) / cfg.batch_size)
        factors = [lr / cfg.lr_max for lr in lerac.lrs()]
        # Kept on the device: a float() per step would synchronize a GPU every step.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        for b, (ids, x, y) in enumerate(loader):
            lr = cyclic_cosine_lr(cycles, round_, b / steps, cfg.lr_max, cfg.lr_min, cfg.lr_decay)
            for group, f in zip(opt.param_groups, factors, strict=True):
                group["lr"] = lr * f
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            extra: dict[str, torch.Tensor] = {}
            if mode is None:
                loss_i = F.cross_entropy(logits, y, reduction="none")
                loss = (sampler.weights(ids, device) * loss_i).mean()
            else:
                pos = sampler.positions(ids) if inst is not None else None
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
                if dist.is_available() and dist.is_initialized():
                    # Class temperatures are shared by all ranks; absent classes keep a zero gradient.
                    dist.all_reduce(class_dp.log_sigma.grad)
                    class_dp.log_sigma.grad /= sampler.world_size
                class_opt.step()
            if inst is not None:
                inst.step(pos, inst_ls.grad, dp.INSTANCE_LR)
                p_pos = torch.as_tensor(pos, device=device)
                extra = {"log_sigma": inst.log_sigma[p_pos], "log_sigma_momentum": inst.momentum[p_pos]}
            embeddings = features.features if features is not None else None
            recorder.observe(ids, loss_i, logits=logits, labels=y, embeddings=embeddings, lr=lr, extra=extra)
            loss_sum += loss_i.detach().sum()
        lerac.step_epoch()
        train_loss = _global_mean(float(loss_sum), len(sampler), device)

        metrics = {"round": round_, "train_loss": train_loss, "samples": len(sampler) * sampler.world_size}
        metrics["step"] = sampler.step
        if sampler.rank == 0:
            evaluated = time.time()
            metrics["test_accuracy"] = evaluate(net, data.test, device)
            # Evaluation only measures the run: benchmarks report it apart from training's time.
            metrics |= {"started_s": started, "ended_s": time.time()}
            metrics["eval_s"] = metrics["ended_s"] - evaluated
        recorder.end_round(metrics)
        # The checkpoint's files are copied to Ray Train's storage by report(); the directory goes after.
        with tempfile.TemporaryDirectory(prefix="curriculum-ckpt-") as d:
            ckpt = None
            if sampler.rank == 0:
                state = {
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "sampler": sampler.state_dict(),
                }
                if class_dp is not None:
                    state |= {"class_dp": class_dp.state_dict(), "class_opt": class_opt.state_dict()}
                torch.save(state, os.path.join(d, "state.pt"))
                write_checkpoint_meta(d, sampler.state_dict())  # --resume reads the round from it
                ckpt = ray.train.Checkpoint.from_directory(d)
            ray.train.report(metrics, checkpoint=ckpt)

"""Data Parameters (Saxena, Tuzel, DeCoste, NeurIPS 2019): learned per-class / per-sample temperatures.

Follows the official code ``apple/ml-data-parameters`` (ALGORITHMS.md §4) where it differs from the
paper:

* The loss is cross-entropy on all logits divided by one scalar sigma*_i per sample (the paper's
  Eq. 1 writes a per-class sigma_j; its gradients, Eqs. 3-5, and the code use the target's sigma).
* Parameters are stored as log sigma; L2 on log sigma of minibatch members only, inside the loss.
* ``SparseSGD``: entries whose gradient is exactly 0 keep parameter and momentum buffer.
* log sigma is clamped to [log(1/20), log(20)] after every step (the paper does not mention it).

Class parameters are an ordinary module (``ClassDataParameters``). Instance parameters are per-sample
state held by the store: each rank receives the ``log_sigma`` / ``momentum`` arrays of its shard,
updates them with ``InstanceParameters`` and sends them back, so no rank all-reduces an n-sized tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Mode = Literal["class", "instance", "joint"]

LOG_SIGMA_BOUNDS: tuple[float, float] = (math.log(1 / 20), math.log(20))
MOMENTUM = 0.9
CLASS_LR = 0.1
CLASS_WD = 5e-4
# Noisy-CIFAR setting of the paper; ImageNet uses lr 0.8 (wd 1e-4 in the paper, 1e-8 in the README).
INSTANCE_LR = 0.2
INSTANCE_WD = 0.0
INIT_SIGMA = 1.0
# Joint mode starts sigma_class + sigma_inst ~ 1, but the clamp lifts sigma_inst to 0.05 after the
# first step (log 0.001 < log(1/20)), so in the released code the joint sigma is ~1.05 from then on.
JOINT_INIT_CLASS_SIGMA = 1.0
JOINT_INIT_INSTANCE_SIGMA = 1e-3


def init_log_sigma(mode: str) -> tuple[float, float]:
    """Initial (class, instance) log sigma for ``mode`` (official code defaults); a mode other than
    class, instance or joint raises ValueError."""
    _check_mode(mode)
    if mode == "joint":
        return math.log(JOINT_INIT_CLASS_SIGMA), math.log(JOINT_INIT_INSTANCE_SIGMA)
    return math.log(INIT_SIGMA), math.log(INIT_SIGMA)


def _check_mode(mode: str) -> None:
    if mode not in ("class", "instance", "joint"):
        raise ValueError(f"mode must be 'class', 'instance' or 'joint', got {mode!r}")


class ClassDataParameters(nn.Module):
    """One log sigma per class (init log ``init_sigma``); ``forward(labels)`` gathers the batch's values.

    Optimize with :class:`SparseSGD` (lr ``CLASS_LR``), not with the model's optimizer, so absent
    classes do not move.
    """

    def __init__(self, num_classes: int, init_sigma: float = INIT_SIGMA) -> None:
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((num_classes,), math.log(init_sigma)))

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.log_sigma[labels]


def effective_sigma(
    mode: Mode,
    class_log_sigma_for_targets: torch.Tensor | None = None,
    instance_log_sigma_for_batch: torch.Tensor | None = None,
) -> torch.Tensor:
    """sigma*_i: exp(class log sigma of y_i), exp(instance log sigma), or their sum ("joint")."""
    _check_mode(mode)
    if mode in ("class", "joint") and class_log_sigma_for_targets is None:
        raise ValueError(f"mode {mode!r} needs class_log_sigma_for_targets")
    if mode in ("instance", "joint") and instance_log_sigma_for_batch is None:
        raise ValueError(f"mode {mode!r} needs instance_log_sigma_for_batch")
    if mode == "class":
        assert class_log_sigma_for_targets is not None
        return class_log_sigma_for_targets.exp()
    assert instance_log_sigma_for_batch is not None
    if mode == "instance":
        return instance_log_sigma_for_batch.exp()
    assert class_log_sigma_for_targets is not None
    return class_log_sigma_for_targets.exp() + instance_log_sigma_for_batch.exp()


def data_parameter_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    sigma: torch.Tensor,
    class_log_sigma_batch: torch.Tensor | None = None,
    instance_log_sigma_batch: torch.Tensor | None = None,
    wd_class: float = CLASS_WD,
    wd_inst: float = INSTANCE_WD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loss with data parameters, and the plain per-sample CE (the store's ``loss`` byproduct).

    mean_i CE(logits_i / sigma_i, y_i) + 0.5 wd_class sum_i (class log sigma_{y_i})^2
    + 0.5 wd_inst sum_i (instance log sigma_i)^2, sums over minibatch members (a class counted once
    per occurrence), as in the official code. Pass the log sigma tensors that ``sigma`` was built
    from (None for a kind not in use). The second output is detached and unscaled by sigma.
    """
    loss = F.cross_entropy(logits / sigma.unsqueeze(1), labels)
    if class_log_sigma_batch is not None and wd_class:
        loss = loss + 0.5 * wd_class * class_log_sigma_batch.square().sum()
    if instance_log_sigma_batch is not None and wd_inst:
        loss = loss + 0.5 * wd_inst * instance_log_sigma_batch.square().sum()
    with torch.no_grad():
        plain_ce = F.cross_entropy(logits, labels, reduction="none")
    return loss, plain_ce


@torch.no_grad()
def _sparse_momentum_step_(
    param: torch.Tensor, buf: torch.Tensor, grad: torch.Tensor, lr: float, momentum: float
) -> None:
    # Same arithmetic as torch.optim.SGD (dampening 0, no Nesterov) on a zero-initialized buffer,
    # whose first step m * 0 + g = g equals SGD's buffer initialization; torch.where keeps the
    # zero-gradient entries bit-for-bit, which is what the official SparseSGD's revert achieves.
    moved = grad != 0
    new_buf = buf.mul(momentum).add_(grad)
    buf.copy_(torch.where(moved, new_buf, buf))
    param.copy_(torch.where(moved, param.add(new_buf, alpha=-lr), param))


class SparseSGD(torch.optim.Optimizer):
    """SGD with momentum (dampening 0, no Nesterov) that leaves zero-gradient entries untouched.

    Entries whose gradient is exactly 0 keep their parameter and momentum buffer bit-for-bit, so
    classes absent from a batch neither move nor decay their momentum (official ``SparseSGD`` with
    ``skip_update_zero_grad``). Weight decay must be 0: it is applied in the loss to minibatch members
    only. ``clamp`` bounds every parameter after each step (None disables, like the code's
    ``--skip_clamp_data_param``).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = CLASS_LR,
        momentum: float = MOMENTUM,
        weight_decay: float = 0.0,
        clamp: tuple[float, float] | None = LOG_SIGMA_BOUNDS,
    ) -> None:
        if weight_decay != 0:
            raise ValueError(
                "SparseSGD needs weight_decay=0; put the L2 term on minibatch members in the loss"
            )
        if lr < 0 or momentum < 0:
            raise ValueError(f"lr and momentum must be non-negative, got {lr}, {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "clamp": clamp})

    @overload
    def step(self, closure: None = None) -> None: ...
    @overload
    def step(self, closure: Callable[[], float]) -> float: ...
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    _sparse_momentum_step_(
                        p, state["momentum_buffer"], p.grad, group["lr"], group["momentum"]
                    )
                if group["clamp"] is not None:
                    p.clamp_(*group["clamp"])
        return loss


class InstanceParameters:
    """A shard's instance log sigma and momentum buffer, updated locally with :class:`SparseSGD`'s rule.

    Built from the float32 arrays the store hands out (copied, indexed by position in the shard).
    Per step: ``leaf = ip.for_batch(pos)``, use it in :func:`effective_sigma`, backward, then
    ``ip.step(pos, leaf.grad, lr)``. After the step the whole shard is clamped, as the official code
    clamps the whole instance tensor; a shard's out-of-range initial values (joint mode's 0.001) are
    therefore raised to 0.05 after its first step.
    """

    def __init__(
        self,
        log_sigma: np.ndarray,
        momentum: np.ndarray,
        momentum_factor: float = MOMENTUM,
        clamp: tuple[float, float] | None = LOG_SIGMA_BOUNDS,
        device: torch.device | str | None = None,
    ) -> None:
        if np.shape(log_sigma) != np.shape(momentum) or np.ndim(log_sigma) != 1:
            raise ValueError(
                f"expected two equal 1-d arrays, got {np.shape(log_sigma)}, {np.shape(momentum)}"
            )
        self.log_sigma = torch.tensor(np.asarray(log_sigma, dtype=np.float32), device=device)
        self.momentum = torch.tensor(np.asarray(momentum, dtype=np.float32), device=device)
        self.momentum_factor = momentum_factor
        self.clamp = clamp

    def _positions(self, positions: torch.Tensor | np.ndarray) -> torch.Tensor:
        return torch.as_tensor(positions, dtype=torch.long, device=self.log_sigma.device)

    def for_batch(self, positions: torch.Tensor | np.ndarray) -> torch.Tensor:
        """A leaf tensor (requires grad) holding log sigma at ``positions`` (shard positions)."""
        return self.log_sigma[self._positions(positions)].detach().requires_grad_(True)

    @torch.no_grad()
    def step(self, positions: torch.Tensor | np.ndarray, grad: torch.Tensor, lr: float) -> None:
        """Sparse momentum SGD on ``positions`` with ``grad`` (the batch leaf's gradient), then clamp.

        Repeated positions have their gradients summed, as autograd does for a repeated index.
        """
        pos = self._positions(positions)
        uniq, inverse = torch.unique(pos, return_inverse=True)
        g = torch.zeros(uniq.shape, dtype=self.log_sigma.dtype, device=pos.device)
        g.index_add_(0, inverse, grad.detach().to(g))
        param, buf = self.log_sigma[uniq], self.momentum[uniq]
        _sparse_momentum_step_(param, buf, g, lr, self.momentum_factor)
        self.log_sigma[uniq] = param
        self.momentum[uniq] = buf
        if self.clamp is not None:
            self.log_sigma.clamp_(*self.clamp)

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """(log_sigma, momentum) as float32 numpy arrays for the store."""
        return self.log_sigma.cpu().numpy().copy(), self.momentum.cpu().numpy().copy()

"""LeRaC, Learning Rate Curriculum (Croitoru, Ristea, Ionescu, Sebe, IJCV 2024): per-depth lr warm-up.

Layers near the input start at the base lr eta0, deeper layers lower; every lr grows until all equal
eta0, after which the normal schedule takes over. This follows the official code ``CroitoruAlin/LeRaC``
(ALGORITHMS.md §5), which differs from the paper as far as it could be checked:

* Paper (as recalled, unverified): eta_j(t) = eta_j(0) * (eta0 / eta_j(0)) ** (t / k), i.e. every layer
  reaches eta0 exactly at iteration k, at its own rate.
* Code (used here): every lr is multiplied by c = 10 per update while the result stays at most eta0,
  so layers reach eta0 at different epochs (deepest last), and updates stop at ``stop_update_epoch``.

Two deliberate deviations from the code, both immaterial for its power-of-ten ladders:

* Depth units are the modules that own parameters (in registration order), not residual blocks, so a
  conv and its BatchNorm are two depths; build the groups by hand for block granularity.
* The code grows an lr only if lr * c < 1.1 eta0 (its ``stop_lr`` 0.11 for eta0 0.1), which can leave
  an lr short of eta0 for good when the ladder is not a power of ten of eta0 (e.g. a ``min_lr`` floor
  of 1e-5 under eta0 = 0.05). Here the grown lr is min(lr * c, eta0), snapped to eta0 within rounding.
"""

from __future__ import annotations

import torch
from torch import nn

# Relative slack for "lr * c reached eta0": 1e-3 * 10 * 10 * 10 may land an ulp below 0.1.
_SNAP = 1e-9


def depth_param_groups(
    model: nn.Module, base_lr: float, min_lr: float = 1e-5, classifier_factor: float = 1e-3
) -> list[dict]:
    """Optimizer parameter groups, one per depth d = 0..D, with LeRaC's initial lrs (official code).

    A depth is a module owning parameters directly, in registration order (for standard networks,
    the leaf modules with parameters); shared parameters count at their first owner. Depth d starts
    at max(base_lr * 10**-d, min_lr); the last one (the classifier) at base_lr * classifier_factor,
    not floored (the code's ``clf_lr``; 1e-3 for CIFAR-10). Each group also carries ``depth`` and
    ``name`` (the module's qualified name).
    """
    groups: list[dict] = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        if not params:
            continue
        seen.update(id(p) for p in params)
        d = len(groups)
        groups.append({"params": params, "lr": max(base_lr * 10.0**-d, min_lr), "depth": d, "name": name})
    if not groups:
        raise ValueError("model has no trainable parameters")
    if len(groups) > 1:
        groups[-1]["lr"] = base_lr * classifier_factor
    return groups


class LeRaCScheduler:
    """Grows each group's lr by ``factor`` at the end of every epoch until it equals ``base_lr``.

    Call :meth:`step_epoch` once at the end of each epoch. At the end of epoch e (1-based) every group
    below ``base_lr`` becomes min(lr * factor, base_lr), but only while e < ``stop_epoch`` (the code's
    ``epoch < stop_update_epoch``, default 20); groups that have not arrived by then keep their lr.
    Once :attr:`done`, the lrs are left to the normal schedule (build that schedule from ``base_lr``,
    not from the groups' initial lrs).
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, base_lr: float, factor: float = 10.0, stop_epoch: int = 20
    ) -> None:
        if factor <= 1:
            raise ValueError(f"factor must be > 1, got {factor}")
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.factor = factor
        self.stop_epoch = stop_epoch
        self.epoch = 0

    @property
    def done(self) -> bool:
        """True when no later :meth:`step_epoch` changes any lr."""
        return self.epoch + 1 >= self.stop_epoch or all(lr >= self.base_lr for lr in self.lrs())

    def lrs(self) -> list[float]:
        """Current lr of every parameter group, in group order."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def step_epoch(self) -> None:
        """End-of-epoch update."""
        grow = not self.done
        self.epoch += 1
        if not grow:
            return
        for g in self.optimizer.param_groups:
            if g["lr"] < self.base_lr:
                grown = g["lr"] * self.factor
                g["lr"] = self.base_lr if grown >= self.base_lr * (1 - _SNAP) else grown

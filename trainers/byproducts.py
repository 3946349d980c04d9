"""Byproducts computed from tensors the training step already has: DoCL output sketches and
embedding sketches, on the tensors' own device."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scorer_service.core.docl import OutputSketch


class OutputByproducts:
    """DoCL byproducts from logits already computed: the logits and the residual onehot(y) - softmax(z),
    exact for <= 128 classes, else both projected by the run's fixed random matrix (on the device)."""

    def __init__(self, num_classes: int, dim: int, seed: int, device: torch.device | str = "cpu") -> None:
        sketch = OutputSketch(num_classes, dim, seed)
        self.matrix = None if sketch.exact else torch.as_tensor(sketch.matrix, device=device)

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        z = logits.detach().float()
        r = F.one_hot(y, z.shape[1]).float() - z.softmax(1)
        if self.matrix is None:
            return {"logit_sketch": z, "residual_sketch": r}
        m = self.matrix.to(z.device)
        return {"logit_sketch": (z @ m).half(), "residual_sketch": (r @ m).half()}


class EmbeddingSketch:
    """A fixed random projection of (penultimate) features to ``dim`` values, seeded by the run."""

    def __init__(self, in_features: int, dim: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed + 7919)
        self.matrix = torch.randn(in_features, dim, generator=g) / math.sqrt(dim)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        if self.matrix.device != features.device:
            self.matrix = self.matrix.to(features.device)
        return (features.detach().float().flatten(1) @ self.matrix).half()


class PenultimateFeatures:
    """Captures the input of a model's last ``nn.Linear`` on every forward pass (a hook, so it sees the
    training forward pass through DDP: no extra forward, no bypassed hooks)."""

    def __init__(self, net: nn.Module) -> None:
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("embedding byproducts need a model whose last layer is nn.Linear")
        self.in_features = linears[-1].in_features
        self.features: torch.Tensor | None = None
        linears[-1].register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.features = inputs[0]

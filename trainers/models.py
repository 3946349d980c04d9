"""Model registry: small defaults for the embedded data, and the hook for the penultimate features."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class MLP(nn.Module):
    """A ReLU MLP; ``features`` exposes the penultimate layer (inputs to the classifier)."""

    def __init__(self, input_dim: int, num_classes: int, hidden: tuple[int, ...] = (128, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = input_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.classifier = nn.Linear(d, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "mlp": lambda d, c: MLP(d, c),
    "mlp-small": lambda d, c: MLP(d, c, hidden=(64,)),
    "mlp-large": lambda d, c: MLP(d, c, hidden=(512, 256)),
}


def build_model(name: str, input_dim: int, num_classes: int) -> nn.Module:
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}") from None
    return factory(input_dim, num_classes)

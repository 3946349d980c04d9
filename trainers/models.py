"""Model registry: small defaults for the embedded data, a small CNN for images, or a user's own.

``build_model(name, input_shape, num_classes)``: ``name`` is a registry key or ``module:callable``,
a user's factory called as ``callable(input_shape, num_classes)`` that returns an ``nn.Module``.
Embedding byproducts read the input of the model's last ``nn.Linear`` (its penultimate features).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

from torch import nn


class MLP(nn.Module):
    """A ReLU MLP over the flattened input."""

    def __init__(self, input_dim: int, num_classes: int, hidden: tuple[int, ...] = (128, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = input_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.classifier = nn.Linear(d, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (32, 64 channels) with max pooling, global average pooling, a linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))


def _cnn(shape: tuple[int, ...], classes: int) -> nn.Module:
    if len(shape) != 3:
        raise ValueError(f"the cnn model needs C x H x W inputs, got rows of shape {shape}")
    return SmallCNN(shape[0], classes)


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "mlp": lambda shape, c: MLP(math.prod(shape), c),
    "mlp-small": lambda shape, c: MLP(math.prod(shape), c, hidden=(64,)),
    "mlp-large": lambda shape, c: MLP(math.prod(shape), c, hidden=(512, 256)),
    "cnn": _cnn,
}


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A model for inputs of ``input_shape`` (one sample's) and ``num_classes`` outputs."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load model {name!r}: {e}") from None
    elif name in MODELS:
        factory = MODELS[name]
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)} or module:callable")
    model = factory(tuple(input_shape), num_classes)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r} returned {type(model).__name__}, not an nn.Module")
    return model

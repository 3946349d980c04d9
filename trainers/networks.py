"""Model registry: small defaults for the embedded data, small CNNs and a small ResNet for images, or a
user's own.

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


def conv_blocks(in_channels: int, width: int) -> list[nn.Module]:
    """Two 3x3 conv blocks with batch norm and ReLU (``width``, then twice as many channels), max pooling
    between them."""
    return [
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
    ]


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (32, 64 channels) with max pooling, global average pooling, a linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_blocks(in_channels, width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))


class ConvNet(nn.Module):
    """Two 3x3 conv blocks (32, 64 channels) with batch norm and max pooling that keep the spatial
    layout (flattened, not pooled away), a 128-unit hidden layer, a linear head: ~91 % on
    Fashion-MNIST after a few epochs."""

    def __init__(self, shape: tuple[int, ...], num_classes: int, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        c, h, w = shape
        self.body = nn.Sequential(
            *conv_blocks(c, width),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (h // 4) * (w // 4), hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        return (self.bn2(self.conv2(out)) + self.shortcut(x)).relu()


class ResNet(nn.Module):
    """A small ResNet for small images: a 3x3 stem and one basic block per stage (16, 32, 64 channels,
    the last two at stride 2), global average pooling, a linear head (8 weight layers)."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        cin = widths[0]
        for i, w in enumerate(widths):
            layers.append(BasicBlock(cin, w, 1 if i == 0 else 2))
            cin = w
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))


def _image_model(name: str, build: Callable[[tuple[int, ...], int], nn.Module]) -> Callable:
    def factory(shape: tuple[int, ...], classes: int) -> nn.Module:
        if len(shape) != 3:
            raise ValueError(f"the {name} model needs C x H x W inputs, got rows of shape {shape}")
        return build(shape, classes)

    return factory


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "mlp": lambda shape, c: MLP(math.prod(shape), c),
    "mlp-small": lambda shape, c: MLP(math.prod(shape), c, hidden=(64,)),
    "mlp-large": lambda shape, c: MLP(math.prod(shape), c, hidden=(512, 256)),
    "cnn": _image_model("cnn", lambda shape, c: SmallCNN(shape[0], c)),
    "convnet": _image_model("convnet", ConvNet),
    "resnet": _image_model("resnet", lambda shape, c: ResNet(shape[0], c)),
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

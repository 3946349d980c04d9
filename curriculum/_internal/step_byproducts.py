"""Byproducts computed from tensors the training step already has: correctness, DoCL output
sketches and embedding sketches, on the tensors' own device.

A recorder keeps each training step's tensors as they are (:class:`Step`); :class:`StepColumns`
turns a buffer of steps into the per-sample columns of one store batch, off the training thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from scorer_service.core.wire.batch import OutputSketch


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


class Step(NamedTuple):
    """What one ``Recorder.observe`` call was given, untouched (the sender builds the columns)."""

    ids: Any  # numpy array, tensor (any device) or sequence of ints
    loss: torch.Tensor
    step: int
    lr: float
    logits: torch.Tensor | None
    labels: torch.Tensor | None
    correct: torch.Tensor | None
    embeddings: torch.Tensor | None
    extra: Mapping[str, torch.Tensor] | None


class StepColumns:
    """The per-sample columns of a buffer of steps, as lists of per-step parts on the steps' devices.

    ``correct``: the run records correctness (given, or ``argmax(logits) == labels``); ``outputs``: DoCL
    sketches of the logits; ``embedding_dim``: width of the embedding sketch (0: none).
    """

    def __init__(
        self, *, correct: bool, outputs: OutputByproducts | None, embedding_dim: int, seed: int
    ) -> None:
        self.correct, self.outputs, self.embedding_dim, self.seed = correct, outputs, embedding_dim, seed
        self._embed: EmbeddingSketch | None = None

    def __call__(self, steps: list[Step]) -> dict[str, list[Any]]:
        with torch.no_grad():
            cols: dict[str, list[Any]] = {
                "sample_id": [s.ids for s in steps],
                "loss": [s.loss.detach() for s in steps],
            }
            if self.correct:
                cols["correct"] = [
                    s.correct.detach() if s.correct is not None else _given(s.logits).argmax(1) == s.labels
                    for s in steps
                ]
            # Label-issue reports name the label trained on and the model's prediction.
            if all(s.labels is not None for s in steps):
                cols["label"] = [s.labels for s in steps]
            if all(s.logits is not None for s in steps):
                cols["predicted"] = [_given(s.logits).detach().argmax(1) for s in steps]
            if self.outputs is not None:
                for s in steps:
                    for name, value in self.outputs(_given(s.logits), _given(s.labels)).items():
                        cols.setdefault(name, []).append(value)
            if self.embedding_dim:
                if self._embed is None:
                    features = _given(steps[0].embeddings)[0].numel()
                    self._embed = EmbeddingSketch(features, self.embedding_dim, self.seed)
                cols["embedding"] = [self._embed(_given(s.embeddings)) for s in steps]
            for s in steps:
                for name, value in (s.extra or {}).items():
                    cols.setdefault(name, []).append(value.detach())
        return cols


def _given(tensor: torch.Tensor | None) -> torch.Tensor:
    """A tensor that ``Recorder.observe`` makes sure every step of this run carries."""
    assert tensor is not None
    return tensor

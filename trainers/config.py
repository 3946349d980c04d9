"""One flat, serializable configuration for a training run (CLI -> driver -> workers -> store)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scorer_service.store import StoreConfig


@dataclass
class TrainConfig:
    run: str = "digits-dihcl-exp"
    dataset: str = "digits"
    model: str = "mlp"
    method: str = "dihcl-exp"
    metric: str = "loss"
    epochs: int = 30
    batch_size: int = 64
    lr_max: float = 0.1
    lr_min: float = 5e-4
    lr_decay: float = 0.85
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warm_start: int = 5
    cycle_length: int = 5
    gamma: float = 0.95
    budget_start: float = 0.85
    budget_factor: float = 0.85
    budget_floor: float = 0.2
    budget_cap: float = 1.0
    seed: int = 0
    workers: int = 2
    gpu: bool = False
    flush_samples: int = 4096
    max_in_flight: int = 8
    selector_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(**data)

    def store_config(self, n: int) -> StoreConfig:
        """The store's part of this configuration, for a dataset of ``n`` training samples."""
        shared = {f.name for f in fields(StoreConfig)} - {"n"}
        return StoreConfig(n=n, **{k: v for k, v in self.to_dict().items() if k in shared})

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
    # None: the method's own budget schedule (see scorer_service.selectors.DEFAULT_BUDGETS).
    budget_start: float | None = None
    budget_factor: float | None = None
    budget_floor: float | None = None
    budget_cap: float | None = None
    full_pass_each_cycle: bool = False
    seed: int = 0
    workers: int = 2
    # Elastic training: with max_workers > workers, Ray Train starts with any number in
    # [workers, max_workers] and resizes between attempts; the store re-shards each round.
    max_workers: int | None = None
    gpu: bool = False
    flush_samples: int = 4096
    max_in_flight: int = 8
    selector_params: dict[str, Any] = field(default_factory=dict)
    # Data Parameters: None, "class", "instance" or "joint".
    data_params: str | None = None
    lerac: bool = False
    # Width of the random projections sent as byproducts (DoCL outputs when C > 128, embeddings).
    sketch_dim: int = 32
    # Diversity (DIHCL Eq. 3): G, the share kept, lambda and its decay per cycle, the optimizer.
    diversity: str = "none"
    diversity_keep: float = 0.4
    diversity_lambda: float = 1.0
    diversity_decay: float = 0.8
    diversity_optimizer: str = "stochastic"
    diversity_epsilon: float = 0.1
    # Durability: store snapshots + write-ahead log (shared storage on clusters), the run's
    # incarnation (set by the driver), and where Ray Train keeps model checkpoints.
    snapshot_dir: str | None = None
    incarnation: str = ""
    storage_path: str | None = None
    # A model checkpoint (directory or URI) to start from: set by ``--resume``.
    resume_checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.max_workers is not None and not 1 <= self.workers <= self.max_workers:
            raise ValueError(f"elastic workers need 1 <= min <= max, got {self.workers}-{self.max_workers}")
        if self.data_params not in (None, "class", "instance", "joint"):
            raise ValueError(f"data_params must be class, instance or joint, got {self.data_params!r}")

    @property
    def num_workers(self) -> int | tuple[int, int]:
        """Ray Train's ``num_workers``: a count, or a ``(min, max)`` range for elastic training."""
        return self.workers if self.max_workers is None else (self.workers, self.max_workers)

    @property
    def tracks_outputs(self) -> bool:
        return self.method == "docl"

    @property
    def tracks_embeddings(self) -> bool:
        return self.diversity != "none" or self.method == "mcl"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(**data)

    def store_config(self, n: int, num_classes: int = 2) -> StoreConfig:
        """The store's part of this configuration, for ``n`` training samples of ``num_classes``."""
        from scorer_service.docl import OutputSketch
        from trainers.data_parameters import init_log_sigma

        shared = {f.name for f in fields(StoreConfig)} - {"n"}
        kw = {k: v for k, v in self.to_dict().items() if k in shared}
        if self.tracks_outputs:
            kw["output_width"] = OutputSketch(num_classes, self.sketch_dim, self.seed).width
        if self.tracks_embeddings:
            kw["embedding_dim"] = self.sketch_dim
        if self.data_params in ("instance", "joint"):
            kw["log_sigma_init"] = init_log_sigma(self.data_params)[1]
        return StoreConfig(n=n, **kw)

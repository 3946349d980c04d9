"""A training run's configuration: the store's settings (:class:`StoreConfig`, composed) and the trainer's.

Serializable (CLI -> driver -> workers), and every field's help text and flag are declared here or in
:mod:`scorer_service.config`; ``trainers.flags`` builds the command line from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from scorer_service.config import StoreConfig, leaves, merge, setting

DATA_PARAMS = ("class", "instance", "joint")
# The store's settings as a flat training configuration names them: by flat name, or a whole group.
_STORE_FIELDS = frozenset(f.name for f in fields(StoreConfig))
_STORE_NAMES = _STORE_FIELDS | {leaf.key for leaf in leaves(StoreConfig)}


def default_run_name(dataset: str, method: str) -> str:
    """``DATASET-METHOD``, the dataset named by its file stem or built-in name without parameters."""
    return f"{dataset.split(':')[0].split('/')[-1]}-{method}"


def parse_workers(text: str) -> int | tuple[int, int]:
    """``N`` or ``MIN-MAX`` (elastic)."""
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else int(lo)
    except ValueError:
        raise ValueError(f"expected N or MIN-MAX, got {text!r}") from None


@dataclass
class TrainConfig:
    # The built-in recipe trains on the embedded digits unless told otherwise.
    store: StoreConfig = field(
        default_factory=lambda: StoreConfig(dataset="digits"), metadata={"cli": "flatten"}
    )
    model: str = setting("mlp", "model registry name, or module:callable returning an nn.Module")
    batch_size: int = setting(64, "per-rank batch size")
    lr_max: float = setting(0.1, "peak learning rate of the first cycle", flag="--lr")
    lr_min: float = setting(5e-4, "learning rate at the end of the first cycle")
    lr_decay: float = setting(0.85, "factor on both ends of the learning rate per cycle")
    momentum: float = setting(0.9, "SGD momentum (Nesterov)")
    weight_decay: float = setting(5e-4, "SGD weight decay")
    # Elastic training: a (min, max) range; Ray Train starts with any number in it and resizes
    # between attempts, and the store re-shards each round.
    workers: int | tuple[int, int] = setting(
        2, "Ray Train workers (0 = local mode; MIN-MAX = elastic)", parse=parse_workers
    )
    gpu: bool = setting(False, "one GPU per worker")
    loader_workers: int = setting(0, "DataLoader worker processes per rank")
    flush_samples: int = setting(4096, "byproducts buffered per send to the store")
    flush_every_s: float = setting(2.0, "seconds after which a rank sends what it buffered, however few")
    max_in_flight: int = setting(8, "sends to the store in flight per rank")
    data_params: str | None = setting(
        None, "Data Parameters: learned class / instance / joint temperatures", choices=lambda: DATA_PARAMS
    )
    lerac: bool = setting(False, "LeRaC per-layer learning-rate curriculum")
    plain: bool = setting(
        False,
        "no store: every sample every round in a seeded per-rank order (the floor a run's own costs "
        "are measured against)",
    )
    storage_path: str | None = setting(
        None, "Ray Train checkpoint storage, a path or URI such as s3://bucket/prefix (shared on clusters)"
    )
    keep_checkpoints: int = setting(2, "model checkpoints kept per run (older ones are deleted)")
    resume_checkpoint: str | None = setting(
        None, "model checkpoint to start from (set by --resume)", cli=False
    )

    def __post_init__(self) -> None:
        w = self.workers
        if isinstance(w, tuple | list):
            if len(w) != 2 or not 1 <= w[0] <= w[1]:
                raise ValueError(f"elastic workers need 1 <= min <= max, got {w}")
            self.workers = (int(w[0]), int(w[1]))
        elif w < 0:
            raise ValueError(f"workers must be >= 0, got {w}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if self.plain and (self.data_params or self.lerac):
            raise ValueError("plain training keeps no store: Data Parameters and LeRaC need one")
        if self.data_params not in (None, *DATA_PARAMS):
            raise ValueError(f"data_params must be class, instance or joint, got {self.data_params!r}")

    def __getattr__(self, name: str) -> Any:
        # The store's settings read as the run's own: cfg.method is cfg.store.method, cfg.budget.start
        # is cfg.store.budget.start.
        store = self.__dict__.get("store")
        if store is not None and name in _STORE_FIELDS:
            return getattr(store, name)
        raise AttributeError(name)

    @property
    def num_workers(self) -> int | tuple[int, int]:
        """Ray Train's ``num_workers``: a count, or a ``(min, max)`` range for elastic training."""
        return self.workers

    @property
    def tracks_embeddings(self) -> bool:
        return self.store.uses_embeddings

    def to_dict(self) -> dict[str, Any]:
        """The trainer's settings, and the store's by flat name under ``store``."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "store"}
        return {"store": self.store.to_dict()} | own

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From :meth:`to_dict`'s form, or flat: store settings beside the trainer's (by flat name or
        nested by group, as :meth:`StoreConfig.from_dict` takes them; those beside win over the same
        ones in ``store``)."""
        data = dict(data)
        section = data.pop("store", None) or {}
        beside = {k: data.pop(k) for k in list(data) if k in _STORE_NAMES}
        store = merge(StoreConfig, {"dataset": "digits"}, section, beside)
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training options: {', '.join(sorted(unknown))}")
        if isinstance(data.get("workers"), list):
            data["workers"] = tuple(data["workers"])
        return cls(store=StoreConfig.from_dict(store), **data)

    @classmethod
    def create(cls, **settings: Any) -> TrainConfig:
        """A configuration from flat keyword settings (store and trainer fields alike)."""
        return cls.from_dict(settings)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with flat ``changes`` applied (store and trainer fields alike)."""
        store = {k: changes.pop(k) for k in list(changes) if k in _STORE_NAMES}
        return replace(self, store=self.store.with_settings(**store), **changes)

    def store_config(self, n: int, num_classes: int = 2) -> StoreConfig:
        """The store's configuration for ``n`` training samples of ``num_classes``."""
        from trainers.data_parameters import init_log_sigma

        derived: dict[str, Any] = {}
        if self.data_params in ("instance", "joint"):
            derived["log_sigma_init"] = init_log_sigma(self.data_params)[1]
        return self.store.completed(n, num_classes, **derived)

"""The store's settings, declared once, in self-checking groups (:mod:`.groups`) composed by
:class:`StoreConfig`; the one conversion from flat or nested settings (:mod:`.declare`); a new run's
configuration (:func:`run_config`); the store's parts made from a configuration (:mod:`.components`)."""

from scorer_service.config.declare import Leaf, group, leaves, merge, nest, setting
from scorer_service.config.groups import (
    BudgetSettings,
    Byproducts,
    Denoise,
    DiversitySettings,
    Durability,
    Schedule,
    Sharding,
)
from scorer_service.config.new_run import (
    MAX_RUN_NAME_BYTES,
    check_run_name,
    default_snapshot_dir,
    new_incarnation,
    run_config,
)
from scorer_service.config.store_config import StoreConfig

__all__ = [
    "MAX_RUN_NAME_BYTES",
    "BudgetSettings",
    "Byproducts",
    "Denoise",
    "DiversitySettings",
    "Durability",
    "Leaf",
    "Schedule",
    "Sharding",
    "StoreConfig",
    "check_run_name",
    "default_snapshot_dir",
    "group",
    "leaves",
    "merge",
    "nest",
    "new_incarnation",
    "run_config",
    "setting",
]

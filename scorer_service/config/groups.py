"""The groups a store's settings come in, each checking its own values when it is made.

A check that needs settings of two groups (or the selector's defaults) is the configuration's own
(:class:`~scorer_service.config.store_config.StoreConfig`). Messages name a setting by its flat name,
the one its flag and the REST create body use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scorer_service.config.declare import setting
from scorer_service.durability.journal import FSYNC_POLICIES
from scorer_service.selection.diversity import DiversityTerm
from scorer_service.selection.schedule import Budget
from scorer_service.submodular import FUNCTIONS, OPTIMIZER_CHOICES


@dataclass(frozen=True)
class Schedule:
    """Which rounds select, and how: the warm start, the cycles after it, the run's end."""

    warm_start: int = setting(5, "rounds on all data before selection")
    cycle_length: int = setting(5, "rounds per cosine cycle", flag="--cycle")
    anneal: float | None = setting(
        None,
        "share of the run's last rounds trained on all data (InfoBatch's annealing; default: the "
        "method's, 0.125 for infobatch, else 0)",
    )
    full_pass_each_cycle: bool = setting(
        False,
        "train on all data in the first round of every cycle (DoCL's cyclical training)",
        flag="--full-pass",
    )

    def __post_init__(self) -> None:
        if self.warm_start < 0:
            raise ValueError(f"warm_start must be >= 0, got {self.warm_start}")
        if self.cycle_length < 1:
            raise ValueError(f"cycle_length must be >= 1, got {self.cycle_length}")
        if self.anneal is not None and not 0.0 <= self.anneal < 1.0:
            raise ValueError(f"anneal must be in [0, 1), got {self.anneal}")


@dataclass(frozen=True)
class BudgetSettings:
    """The selected fraction per selection cycle where it differs from the method's own schedule
    (None: the method's; DIHCL shrinks, DoCL / SPL / MCL grow)."""

    start: float | None = setting(
        None, "selected fraction in the first selection cycle (default: the method's)"
    )
    factor: float | None = setting(None, "budget factor per selection cycle (default: the method's)")
    floor: float | None = setting(None, "smallest budget fraction (default: the method's)")
    cap: float | None = setting(None, "largest budget fraction (default: the method's)")

    def __post_init__(self) -> None:
        for name in ("start", "floor", "cap"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"budget_{name} must be in (0, 1], got {value}")
        if self.factor is not None and not self.factor > 0.0:
            raise ValueError(f"budget_factor must be > 0, got {self.factor}")
        if self.floor is not None and self.cap is not None and self.floor > self.cap:
            raise ValueError(f"budget_floor must be <= budget_cap, got {self.floor} > {self.cap}")

    def over(self, default: Budget) -> Budget:
        """The budget of a run: ``default`` (the method's) with the fractions given here."""
        given = {k: v for k, v in vars(self).items() if v is not None}
        return replace(default, **given)


@dataclass(frozen=True)
class DiversitySettings:
    """The share of each selection picked by hardness + diversity (DIHCL Eq. 3), and how."""

    function: str = setting(
        "none",
        "keep a share of each selection by hardness + diversity (DIHCL Eq. 3)",
        key="diversity",
        choices=lambda: ("none", *sorted(FUNCTIONS)),
    )
    keep: float = setting(0.4, "share of the selection the diversity term keeps")
    lam: float = setting(
        1.0, "weight of the diversity term in the first selection cycle", key="diversity_lambda"
    )
    decay: float = setting(0.8, "factor on the diversity weight per selection cycle")
    optimizer: str = setting(
        "auto",
        "stochastic: lazier-than-lazy greedy; lazy: exact greedy; lazy-stochastic: stochastic greedy "
        "that also probes lazy greedy's heap; auto: lazy up to 20,000 candidates, lazy-stochastic up "
        "to 200,000, stochastic above",
        choices=lambda: sorted(OPTIMIZER_CHOICES),
    )
    epsilon: float = setting(0.1, "stochastic greedy's epsilon: (n/k) ln(1/epsilon) candidates per step")
    report_size: int = setting(
        8192, "candidates sampled to report each diversity step's objective against a global solve (0: off)"
    )

    def __post_init__(self) -> None:
        if self.function not in ("none", *FUNCTIONS):
            raise ValueError(
                f"unknown diversity {self.function!r}; expected none or one of {', '.join(FUNCTIONS)}"
            )
        if not 0.0 < self.keep <= 1.0:
            raise ValueError(f"diversity_keep must be in (0, 1], got {self.keep}")
        if not (math.isfinite(self.lam) and self.lam >= 0.0):
            raise ValueError(f"diversity_lambda must be a finite number >= 0, got {self.lam}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"diversity_decay must be in (0, 1], got {self.decay}")
        if self.optimizer not in OPTIMIZER_CHOICES:
            raise ValueError(
                f"unknown diversity_optimizer {self.optimizer!r}; "
                f"expected one of {', '.join(sorted(OPTIMIZER_CHOICES))}"
            )
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"diversity_epsilon must be in (0, 1), got {self.epsilon}")

    @property
    def enabled(self) -> bool:
        return self.function != "none"

    @property
    def term(self) -> DiversityTerm:
        """The selection's diversity term of these settings."""
        return DiversityTerm(
            function=self.function,
            keep=self.keep,
            lam=self.lam,
            decay=self.decay,
            optimizer=self.optimizer,
            epsilon=self.epsilon,
            report_size=self.report_size,
        )


@dataclass(frozen=True)
class Denoise:
    """Whether likely mislabeled samples sit out, and which count as such."""

    enabled: bool = setting(
        False,
        "after warm start, likely mislabeled samples leave the candidate pool (back in the last round "
        "of each cycle, to be observed again)",
        key="denoise",
    )
    threshold: float = setting(
        0.5, "noise probability above which a sample counts as likely mislabeled", key="noise_threshold"
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"noise_threshold must be in (0, 1), got {self.threshold}")


@dataclass(frozen=True)
class Byproducts:
    """What the trainers send beside the loss, and the widths of the per-sample vectors kept."""

    correct: bool = setting(True, "trainers send whether each prediction was correct (False: regression, LM)")
    sketch_dim: int = setting(
        32, "width of the random projections sent (DoCL outputs when C > 128, embeddings)"
    )
    # 0: not kept. Outputs for DoCL, embeddings for diversity; set from the method and the classes.
    output_width: int = setting(0, "width of the output sketches kept (DoCL)", cli=False)
    embedding_dim: int = setting(0, "width of the embedding sketches kept (diversity)", cli=False)
    log_sigma_init: float = setting(0.0, "initial instance log temperature (Data Parameters)", cli=False)

    def __post_init__(self) -> None:
        for name in ("sketch_dim", "output_width", "embedding_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Durability:
    """Where the store's snapshots and log go, how often, and what a machine crash may take."""

    snapshot_dir: str | None = setting(
        None, "store snapshots and log (default: $CURRICULUM_SNAPSHOT_DIR or ~/.curriculum/snapshots)"
    )
    # Tells a fresh run from an earlier run of the same name; a restarted actor keeps it and so
    # restores its own state.
    incarnation: str = setting("0", "which run of this name the snapshots belong to", cli=False)
    snapshot_every_s: float = setting(60.0, "seconds between snapshots within a round")
    keep_snapshots: int = setting(3, "end-of-round snapshots kept (rewind targets)")
    # What a machine crash may take (see the README's durability section); a process crash takes nothing.
    fsync: str = setting(
        "always",
        "when the write-ahead log reaches the disk: always (before each ingest is acknowledged), "
        "round (at each round's end) or never (when the OS writes it back)",
        choices=lambda: FSYNC_POLICIES,
    )

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"unknown fsync {self.fsync!r}; expected one of {', '.join(FSYNC_POLICIES)}")
        if self.snapshot_every_s < 0:
            raise ValueError(f"snapshot_every_s must be >= 0, got {self.snapshot_every_s}")


@dataclass(frozen=True)
class Sharding:
    """How many actors hold the store, and how long a round's selection waits for the ranks."""

    store_shards: int = setting(
        1,
        "store shards (actors) by sample-id range, each with its own snapshots and log; "
        "0: as many as n and the nodes' memory need",
    )
    max_staleness: int = setting(
        -1,
        "ranks skip the end-of-round barrier and a round is selected from scores at most this many "
        "optimizer steps old (-1: every rank's byproducts are in before a round is selected)",
    )

    def __post_init__(self) -> None:
        if self.store_shards < 0:
            raise ValueError(f"store_shards must be in [0, n], got {self.store_shards}")
        if self.max_staleness < -1:
            raise ValueError(f"max_staleness must be >= -1 (-1: no staleness), got {self.max_staleness}")

"""The store's settings: what determines a run's scores and selections, in groups.

Every setting carries its help text (and, where it differs from ``--flat-name``, its command-line
flag) as metadata: the trainer's configuration composes :class:`StoreConfig`, and the CLI builds one
flag per setting from these declarations, so a setting is written down in exactly one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scorer_service.config.declare import build, flatten, group, merge, setting
from scorer_service.config.groups import (
    BudgetSettings,
    Byproducts,
    Denoise,
    DiversitySettings,
    Durability,
    Schedule,
    Sharding,
)
from scorer_service.core.hardness import HARDNESS_METRICS
from scorer_service.selection import SELECTORS, SelectorSpec, selector_spec
from scorer_service.selection.references import prune_ratio
from scorer_service.selection.schedule import Budget, Cycles


@dataclass(frozen=True)
class StoreConfig:
    """Everything that determines a run's scores and selections (with the seed, reproducibly); a value
    out of range or at odds with the others raises ``ValueError`` at construction. Example::

        config = curriculum.create_run("cifar-dihcl", n=50_000, epochs=200, method="dihcl-exp").config"""

    n: int = setting(0, "training samples (0: set from the training data)", cli=False)
    epochs: int = setting(30, "rounds (one epoch over the round's subset each)")
    run: str = setting("run", "run name (default for `curriculum train`: DATASET-METHOD)")
    # The training data's spec (as given to the trainers): lets the dashboard show sample images.
    dataset: str = setting("", "training data: digits | synthetic[:n=..,classes=..,noise=..] | path")
    method: str = setting("dihcl-exp", "subset selector", choices=lambda: sorted(SELECTORS))
    metric: str = setting("loss", "instantaneous hardness for DIH", choices=lambda: HARDNESS_METRICS)
    gamma: float = setting(0.95, "DIH weight of the newest observation")
    unbiased: bool = setting(
        False,
        "weight each selected sample's loss by (k/n) / its inclusion probability, clipped, so the "
        "expected gradient is full data's (sampling selectors: random, dihcl-exp)",
    )
    seed: int = setting(0, "seed of the model, the data order, the sketches and every selection")
    num_classes: int = setting(0, "classes of the labels (0: not a classification run)", cli=False)
    selector_params: dict[str, Any] = setting({}, "selector options as JSON, e.g. '{\"temperature\": 10}'")
    schedule: Schedule = group(Schedule)
    budget: BudgetSettings = group(BudgetSettings, prefix="budget")
    diversity: DiversitySettings = group(DiversitySettings, prefix="diversity")
    denoise: Denoise = group(Denoise)
    byproducts: Byproducts = group(Byproducts)
    durability: Durability = group(Durability)
    sharding: Sharding = group(Sharding)

    def __post_init__(self) -> None:
        selector_spec(self.method)
        if self.n and self.sharding.store_shards > self.n:
            raise ValueError(f"store_shards must be in [0, n], got {self.sharding.store_shards}")
        if self.metric not in HARDNESS_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {', '.join(HARDNESS_METRICS)}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        # Build both once so that a bad layout fails here, at run creation, not at round 5.
        _ = (self.cycles, self.selection_budget)
        if self.n:
            self._check_byproducts()
        if "prune_ratio" in self.selector_params:
            prune_ratio(self.selector_params)
        if self.unbiased and self.selector.inclusion is None:
            sampling = sorted(name for name, spec in SELECTORS.items() if spec.inclusion is not None)
            raise ValueError(
                f"unbiased needs a selector that samples with known probabilities ({', '.join(sampling)}); "
                f"{self.method!r} picks its samples deterministically or weights them itself"
            )

    def _check_byproducts(self) -> None:
        """Refuse, at run creation, a method that needs a byproduct the trainers will not send."""
        needs = set(self.selector.byproducts) - {"embedding"}  # MCL falls back without embeddings
        if self.metric == "flip":
            needs.add("correct")
        if "correct" in needs and not self.byproducts.correct:
            what = "metric flip" if self.metric == "flip" else f"method {self.method!r}"
            raise ValueError(
                f"{what} needs correctness byproducts, but this run is created with correct=False"
            )
        if "outputs" in needs and not self.byproducts.output_width:
            raise ValueError(f"method {self.method!r} needs the logits: give num_classes (or output_width)")
        if self.diversity.enabled and not self.byproducts.embedding_dim:
            raise ValueError("diversity needs embedding sketches: set embedding_dim (or sketch_dim)")

    def completed(self, n: int, num_classes: int | None = None, **derived: Any) -> StoreConfig:
        """This configuration for ``n`` training samples of ``num_classes``, with the widths of the
        byproduct sketches the run's method needs (and any other ``derived`` settings, by flat name)."""
        from scorer_service.core.wire.batch import OutputSketch

        classes = self.num_classes if num_classes is None else num_classes
        sketch = self.byproducts.sketch_dim
        widths: dict[str, Any] = {}
        if "outputs" in self.selector.byproducts and classes:
            widths["output_width"] = OutputSketch(classes, sketch, self.seed).width
        if self.uses_embeddings:
            widths["embedding_dim"] = sketch
        return self.with_settings(n=n, num_classes=classes, **(widths | derived))

    def with_settings(self, **changes: Any) -> StoreConfig:
        """A copy with ``changes`` applied, by flat name or nested by group (checked again)."""
        return build(StoreConfig, merge(StoreConfig, self.to_dict(), changes))

    @classmethod
    def create(cls, **settings: Any) -> StoreConfig:
        """A configuration from keyword settings, by flat name or nested by group."""
        return build(cls, settings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreConfig:
        """From :meth:`to_dict`'s flat settings, settings nested by group (as :func:`dataclasses.asdict`
        writes them) or a mix: snapshots, ``info().config`` and files of any version."""
        return build(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """The settings by flat name: the form snapshots, ``info().config`` and flags use."""
        return flatten(self)

    @property
    def selector(self) -> SelectorSpec:
        return selector_spec(self.method)

    @property
    def cycles(self) -> Cycles:
        return Cycles(self.epochs, self.schedule.warm_start, self.schedule.cycle_length)

    @property
    def selection_budget(self) -> Budget:
        """The method's budget with the fractions the run sets."""
        return self.budget.over(self.selector.budget)

    @property
    def uses_embeddings(self) -> bool:
        """Whether trainers send embedding sketches: for the diversity term or a selector reading them."""
        return self.diversity.enabled or "embedding" in self.selector.byproducts

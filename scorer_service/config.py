"""The store's settings, declared once.

Every field carries its help text (and, where it differs from ``--field-name``, its command-line
flag) as metadata: the trainer's configuration composes :class:`StoreConfig`, and the CLI builds
one flag per field from these declarations, so a setting is written down in exactly one place.
"""

from __future__ import annotations

import math
import numbers
import os
import time
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from scorer_service.core.hardness import HARDNESS_METRICS
from scorer_service.core.ingest import Ingestor
from scorer_service.durability.journal import FSYNC_POLICIES, Journal
from scorer_service.selection import SELECTORS, SelectorSpec, selector_spec
from scorer_service.selection.diversity import DiversityTerm
from scorer_service.selection.protocol import RoundSelector
from scorer_service.selection.references import prune_ratio
from scorer_service.selection.schedule import Budget, Cycles
from scorer_service.submodular import FUNCTIONS, OPTIMIZER_CHOICES


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    choices: Callable[[], Iterable[str]] | None = None,
    parse: Callable[[str], Any] | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field with its user-facing description.

    ``choices`` is called when the flag is built (registries fill up at import); ``parse`` turns the
    flag's text into the value (default: the field's type); ``cli=False`` marks a field that is
    derived or set by the program, not by the user.
    """
    meta = {"help": help, "flag": flag, "choices": choices, "parse": parse, "cli": cli}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
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
    warm_start: int = setting(5, "rounds on all data before selection")
    cycle_length: int = setting(5, "rounds per cosine cycle", flag="--cycle")
    # None: the selector's own schedule (shrinking for DIHCL, growing for DoCL / SPL / MCL).
    budget_start: float | None = setting(
        None, "selected fraction in the first selection cycle (default: the method's)"
    )
    budget_factor: float | None = setting(None, "budget factor per selection cycle (default: the method's)")
    budget_floor: float | None = setting(None, "smallest budget fraction (default: the method's)")
    budget_cap: float | None = setting(None, "largest budget fraction (default: the method's)")
    anneal: float | None = setting(
        None,
        "share of the run's last rounds trained on all data (InfoBatch's annealing; default: the "
        "method's, 0.125 for infobatch, else 0)",
    )
    unbiased: bool = setting(
        False,
        "weight each selected sample's loss by (k/n) / its inclusion probability, clipped, so the "
        "expected gradient is full data's (sampling selectors: random, dihcl-exp)",
    )
    full_pass_each_cycle: bool = setting(
        False,
        "train on all data in the first round of every cycle (DoCL's cyclical training)",
        flag="--full-pass",
    )
    diversity: str = setting(
        "none",
        "keep a share of each selection by hardness + diversity (DIHCL Eq. 3)",
        choices=lambda: ("none", *sorted(FUNCTIONS)),
    )
    diversity_keep: float = setting(0.4, "share of the selection the diversity term keeps")
    diversity_lambda: float = setting(1.0, "weight of the diversity term in the first selection cycle")
    diversity_decay: float = setting(0.8, "factor on the diversity weight per selection cycle")
    diversity_optimizer: str = setting(
        "auto",
        "stochastic: lazier-than-lazy greedy; lazy: exact greedy; lazy-stochastic: stochastic greedy "
        "that also probes lazy greedy's heap; auto: lazy up to 20,000 candidates, lazy-stochastic up "
        "to 200,000, stochastic above",
        choices=lambda: sorted(OPTIMIZER_CHOICES),
    )
    diversity_epsilon: float = setting(
        0.1, "stochastic greedy's epsilon: (n/k) ln(1/epsilon) candidates per step"
    )
    diversity_report_size: int = setting(
        8192, "candidates sampled to report each diversity step's objective against a global solve (0: off)"
    )
    denoise: bool = setting(
        False,
        "after warm start, likely mislabeled samples leave the candidate pool (back in the last round "
        "of each cycle, to be observed again)",
    )
    noise_threshold: float = setting(
        0.5, "noise probability above which a sample counts as likely mislabeled"
    )
    seed: int = setting(0, "seed of the model, the data order, the sketches and every selection")
    num_classes: int = setting(0, "classes of the labels (0: not a classification run)", cli=False)
    correct: bool = setting(True, "trainers send whether each prediction was correct (False: regression, LM)")
    sketch_dim: int = setting(
        32, "width of the random projections sent (DoCL outputs when C > 128, embeddings)"
    )
    selector_params: dict[str, Any] = setting({}, "selector options as JSON, e.g. '{\"temperature\": 10}'")
    # Widths of the per-sample vectors kept (0: not kept): outputs for DoCL, embedding for diversity.
    output_width: int = setting(0, "width of the output sketches kept (DoCL)", cli=False)
    embedding_dim: int = setting(0, "width of the embedding sketches kept (diversity)", cli=False)
    log_sigma_init: float = setting(0.0, "initial instance log temperature (Data Parameters)", cli=False)
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
        selector_spec(self.method)
        if self.store_shards < 0 or (self.n and self.store_shards > self.n):
            raise ValueError(f"store_shards must be in [0, n], got {self.store_shards}")
        if self.max_staleness < -1:
            raise ValueError(f"max_staleness must be >= -1 (-1: no staleness), got {self.max_staleness}")
        if self.metric not in HARDNESS_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {', '.join(HARDNESS_METRICS)}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        # Build both once so that a bad layout fails here, at run creation, not at round 5.
        _ = (self.cycles, self.budget)
        if self.diversity not in ("none", *FUNCTIONS):
            raise ValueError(
                f"unknown diversity {self.diversity!r}; expected none or one of {', '.join(FUNCTIONS)}"
            )
        if self.n:
            self._check_byproducts()
        if not 0.0 < self.diversity_keep <= 1.0:
            raise ValueError(f"diversity_keep must be in (0, 1], got {self.diversity_keep}")
        if not (math.isfinite(self.diversity_lambda) and self.diversity_lambda >= 0.0):
            raise ValueError(f"diversity_lambda must be a finite number >= 0, got {self.diversity_lambda}")
        if not 0.0 < self.diversity_decay <= 1.0:
            raise ValueError(f"diversity_decay must be in (0, 1], got {self.diversity_decay}")
        if self.diversity_optimizer not in OPTIMIZER_CHOICES:
            raise ValueError(
                f"unknown diversity_optimizer {self.diversity_optimizer!r}; "
                f"expected one of {', '.join(sorted(OPTIMIZER_CHOICES))}"
            )
        if not 0.0 < self.diversity_epsilon < 1.0:
            raise ValueError(f"diversity_epsilon must be in (0, 1), got {self.diversity_epsilon}")
        if "prune_ratio" in self.selector_params:
            prune_ratio(self.selector_params)
        if self.anneal is not None and not 0.0 <= self.anneal < 1.0:
            raise ValueError(f"anneal must be in [0, 1), got {self.anneal}")
        if self.unbiased and self.selector.inclusion is None:
            sampling = sorted(name for name, spec in SELECTORS.items() if spec.inclusion is not None)
            raise ValueError(
                f"unbiased needs a selector that samples with known probabilities ({', '.join(sampling)}); "
                f"{self.method!r} picks its samples deterministically or weights them itself"
            )
        if not 0.0 < self.noise_threshold < 1.0:
            raise ValueError(f"noise_threshold must be in (0, 1), got {self.noise_threshold}")
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"unknown fsync {self.fsync!r}; expected one of {', '.join(FSYNC_POLICIES)}")

    def _check_byproducts(self) -> None:
        """Refuse, at run creation, a method that needs a byproduct the trainers will not send."""
        needs = set(self.selector.byproducts) - {"embedding"}  # MCL falls back without embeddings
        if self.metric == "flip":
            needs.add("correct")
        if "correct" in needs and not self.correct:
            what = "metric flip" if self.metric == "flip" else f"method {self.method!r}"
            raise ValueError(
                f"{what} needs correctness byproducts, but this run is created with correct=False"
            )
        if "outputs" in needs and not self.output_width:
            raise ValueError(f"method {self.method!r} needs the logits: give num_classes (or output_width)")
        if self.diversity != "none" and not self.embedding_dim:
            raise ValueError("diversity needs embedding sketches: set embedding_dim (or sketch_dim)")

    def completed(self, n: int, num_classes: int | None = None, **derived: Any) -> StoreConfig:
        """This configuration for ``n`` training samples of ``num_classes``, with the widths of the
        byproduct sketches the run's method needs (and any other ``derived`` settings)."""
        from scorer_service.core.wire import OutputSketch

        classes = self.num_classes if num_classes is None else num_classes
        widths: dict[str, Any] = {}
        if "outputs" in self.selector.byproducts and classes:
            widths["output_width"] = OutputSketch(classes, self.sketch_dim, self.seed).width
        if self.uses_embeddings:
            widths["embedding_dim"] = self.sketch_dim
        return replace(self, n=n, num_classes=classes, **(widths | derived))

    @property
    def selector(self) -> SelectorSpec:
        return selector_spec(self.method)

    @property
    def cycles(self) -> Cycles:
        return Cycles(self.epochs, self.warm_start, self.cycle_length)

    @property
    def budget(self) -> Budget:
        given = {
            "start": self.budget_start,
            "factor": self.budget_factor,
            "floor": self.budget_floor,
            "cap": self.budget_cap,
        }
        return replace(self.selector.budget, **{k: v for k, v in given.items() if v is not None})

    @property
    def diversity_term(self) -> DiversityTerm:
        return DiversityTerm(
            self.diversity,
            self.diversity_keep,
            self.diversity_lambda,
            self.diversity_decay,
            self.diversity_optimizer,
            self.diversity_epsilon,
            self.diversity_report_size,
        )

    @property
    def uses_embeddings(self) -> bool:
        """Whether trainers send embedding sketches: for the diversity term or a selector reading them."""
        return self.diversity != "none" or "embedding" in self.selector.byproducts

    def bounds(self) -> list[int]:
        """Shard i holds the sample ids ``bounds[i] .. bounds[i + 1] - 1`` (equal ranges, in order)."""
        shards = max(1, self.store_shards)
        return [i * self.n // shards for i in range(shards + 1)]

    def ingestor(self, shard: int = 0) -> Ingestor:
        """A fresh ingest component for shard ``shard`` of a store of this configuration."""
        widths = {"outputs": self.output_width, "embedding": self.embedding_dim}
        bounds = self.bounds()
        return Ingestor(
            bounds[shard + 1] - bounds[shard],
            first=bounds[shard],
            metric=self.metric,
            gamma=self.gamma,
            widths=widths,
            log_sigma_init=self.log_sigma_init,
            correct=self.correct,
            drop_superseded=self.max_staleness >= 0,
        )

    def planner(self) -> RoundSelector:
        """The coordinator's plan of every round's selection for a store of this configuration."""
        return RoundSelector(
            self.selector,
            n=self.n,
            cycles=self.cycles,
            budget=self.budget,
            diversity=self.diversity_term,
            seed=self.seed,
            params=self.selector_params,
            full_pass_each_cycle=self.full_pass_each_cycle,
            denoise=self.noise_threshold if self.denoise else None,
            anneal=self.selector.anneal if self.anneal is None else self.anneal,
            unbiased=self.unbiased,
        )

    def journal(self, shard: int = 0) -> Journal:
        """The write-ahead log and snapshots of shard ``shard`` of this run's store (memory only without
        snapshot_dir): shard 0 in the run's directory, shard i > 0 in ``shard-i`` within it."""
        return Journal(
            self.snapshot_dir,
            self.run,
            self.incarnation if shard == 0 else f"{self.incarnation}/shard-{shard:03d}",
            every_s=self.snapshot_every_s,
            keep=self.keep_snapshots,
            fsync=self.fsync,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Set by the program, never by whoever creates a run.
_DERIVED = frozenset({"n", "run", "num_classes", "incarnation"})
_TYPES = {
    "int": (numbers.Integral,),
    "float": (numbers.Real,),
    "str": (str,),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
}


def default_snapshot_dir() -> str:
    return os.environ.get("CURRICULUM_SNAPSHOT_DIR") or os.path.expanduser("~/.curriculum/snapshots")


def new_incarnation() -> str:
    """Tells this run from an earlier run of the same name in the same snapshot directory."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def run_config(name: str, n: int, *, num_classes: int | None = None, **settings: Any) -> StoreConfig:
    """The configuration of a new run ``name`` of ``n`` samples: ``settings`` are StoreConfig fields,
    each of its declared type (they may come from JSON); ``snapshot_dir`` defaults to
    :func:`default_snapshot_dir`.

    Raises:
        ValueError: a name that cannot name a directory, an unknown setting, a value of the wrong
            type or out of range, ``n`` < 1.

    Example::

        config = run_config("cifar", 50_000, epochs=200, method="dihcl-exp", num_classes=10)
    """
    check_run_name(name)
    known = {f.name: f for f in fields(StoreConfig)}
    unknown = sorted(set(settings) - (known.keys() - _DERIVED))
    if unknown:
        raise ValueError(f"unknown run settings: {', '.join(unknown)}")
    hints = typing.get_type_hints(StoreConfig)
    for key, value in settings.items():
        _check_type(key, value, hints[key])
    _check_type("n", n, int)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if num_classes is not None:
        _check_type("num_classes", num_classes, int)
    settings.setdefault("snapshot_dir", default_snapshot_dir())
    config = StoreConfig(run=name, incarnation=new_incarnation(), **settings)
    return config.completed(n, num_classes or 0)


# A run's snapshots live in a directory named after it: at most this many bytes (UTF-8) of a file
# system's usual 255, and nothing that leaves or splits that directory.
MAX_RUN_NAME_BYTES = 200


def check_run_name(name: str) -> None:
    """ValueError unless ``name`` can name the run's snapshot directory: not empty, ``.`` or ``..``,
    no ``/``, ``\\`` or control characters, at most :data:`MAX_RUN_NAME_BYTES` bytes in UTF-8."""
    bad = [c for c in name if c in "/\\" or not c.isprintable()]
    if name in ("", ".", "..") or bad:
        raise ValueError(
            f"run name {name!r} cannot name a directory: not '.' or '..', no '/', '\\' or control characters"
        )
    if len(name.encode("utf-8", "surrogatepass")) > MAX_RUN_NAME_BYTES:
        raise ValueError(f"run name {name[:20]!r}... is longer than {MAX_RUN_NAME_BYTES} bytes in UTF-8")


def _check_type(key: str, value: Any, hint: Any) -> None:
    """ValueError unless ``value`` is of the type ``hint`` (or None where it allows None); a bool is
    not a number here. What is inside a container is left to the field's own checks."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    names = [getattr(a, "__name__", str(a)) for a in (typing.get_args(hint) if union else (hint,))]
    if value is None and "NoneType" in names:
        return
    allowed = [t for name in names for t in _TYPES.get(name, ())]
    if any(name not in _TYPES and name != "NoneType" for name in names):
        return  # a type JSON cannot carry: the field's own checks decide
    if isinstance(value, bool) and bool not in allowed or not isinstance(value, tuple(allowed)):
        raise ValueError(f"setting {key} must be {' or '.join(names)}, got {value!r}")

"""A new run's configuration from the settings its creator gives (``create_run``, REST, JSON), checked."""

from __future__ import annotations

import numbers
import os
import time
import types
import typing
import uuid
from typing import Any

from scorer_service.config.declare import leaves, settings_by_key
from scorer_service.config.store_config import StoreConfig

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
    """The configuration of a new run ``name`` of ``n`` samples: ``settings`` are StoreConfig settings
    (by flat name, or nested by group), each of its declared type (they may come from JSON);
    ``snapshot_dir`` defaults to :func:`default_snapshot_dir`.

    Raises:
        ValueError: a name that cannot name a directory, an unknown setting, a value of the wrong
            type or out of range, ``n`` < 1.

    Example::

        config = run_config("cifar", 50_000, epochs=200, method="dihcl-exp", num_classes=10)
    """
    check_run_name(name)
    given, unknown = settings_by_key(StoreConfig, settings)
    unknown += sorted(_DERIVED & given.keys())
    if unknown:
        raise ValueError(f"unknown run settings: {', '.join(sorted(unknown))}")
    hints = {leaf.key: leaf.hint for leaf in leaves(StoreConfig)}
    for key, value in given.items():
        _check_type(key, value, hints[key])
    _check_type("n", n, int)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if num_classes is not None:
        _check_type("num_classes", num_classes, int)
    given.setdefault("snapshot_dir", default_snapshot_dir())
    config = StoreConfig.create(run=name, incarnation=new_incarnation(), **given)
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

"""Command-line flags built from the configuration dataclasses, and ``--config FILE`` loading.

One flag per setting (``--flat-name``, a grouped setting's flat name starting with its group's prefix,
unless its metadata names another flag), its help text and choices from the field's metadata, its
type from the annotation. Flags default to "not given", so a configuration file's values hold unless
a flag overrides them.
"""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import Field
from pathlib import Path
from typing import Any

from scorer_service.config import Leaf, StoreConfig, leaves
from trainers.train_config import TrainConfig


def _parser_for(f: Field, hint: Any) -> dict[str, Any]:
    meta = f.metadata
    if meta.get("parse"):
        return {"type": meta["parse"]}
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    base = typing.get_origin(args[0]) or args[0]
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if base is dict:
        return {"type": json.loads, "metavar": "JSON"}
    return {"type": base}


def config_fields() -> list[Leaf]:
    """Every user-facing setting of a training run: the store's, then the trainer's."""
    return [
        leaf for leaf in leaves(StoreConfig) + leaves(TrainConfig) if leaf.field.metadata.get("cli") is True
    ]


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; parsed values land under its flat name, absent ones are not set."""
    defaults = TrainConfig()
    store_keys = {leaf.key for leaf in leaves(StoreConfig)}
    for leaf in config_fields():
        meta = leaf.field.metadata
        default = leaf.get(defaults.store if leaf.key in store_keys else defaults)
        kw = _parser_for(leaf.field, leaf.hint)
        if meta.get("choices"):
            kw["choices"] = list(meta["choices"]())
        shown = "" if default in (None, "", {}) else f" (default: {default})"
        parser.add_argument(
            leaf.flag, dest=leaf.key, default=argparse.SUPPRESS, help=meta["help"] + shown, **kw
        )
    parser.add_argument(
        "--config", type=Path, default=None, help="a JSON or YAML file of settings (flags override it)"
    )


def load_config_file(path: Path) -> dict[str, Any]:
    """Settings from a ``.json`` or ``.yaml``/``.yml`` file: flat, or nested as saved (``store:`` section,
    groups such as ``budget: {start: 0.5}``)."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"--config takes a .json or .yaml file, got {path}")
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings")
    return data


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a parsed command line gives: the config file's, overridden by explicit flags."""
    given = {leaf.key: getattr(args, leaf.key) for leaf in config_fields() if hasattr(args, leaf.key)}
    base = load_config_file(args.config) if getattr(args, "config", None) else {}
    flat = dict(base)
    flat |= flat.pop("store", None) or {}
    return flat | given

"""Command-line flags built from the configuration dataclasses, and ``--config FILE`` loading.

One flag per field (``--field-name`` unless the field's metadata names another), its help text and
choices from the field's metadata, its type from the annotation. Flags default to "not given", so a
configuration file's values hold unless a flag overrides them.
"""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

from scorer_service.config import StoreConfig
from trainers.config import TrainConfig


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


def config_fields() -> list[tuple[Field, Any]]:
    """Every user-facing setting of a training run: the store's, then the trainer's."""
    out = []
    for cls in (StoreConfig, TrainConfig):
        hints = typing.get_type_hints(cls)
        out += [(f, hints[f.name]) for f in fields(cls) if f.metadata.get("cli") is True]
    return out


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; parsed values land under the field's name, absent ones are not set."""
    defaults = TrainConfig()
    for f, hint in config_fields():
        meta = f.metadata
        default = getattr(defaults, f.name)
        kw = _parser_for(f, hint)
        if meta.get("choices"):
            kw["choices"] = list(meta["choices"]())
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        shown = "" if default in (None, "", {}) else f" (default: {default})"
        parser.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, help=meta["help"] + shown, **kw)
    parser.add_argument(
        "--config", type=Path, default=None, help="a JSON or YAML file of settings (flags override it)"
    )


def load_config_file(path: Path) -> dict[str, Any]:
    """Settings from a ``.json`` or ``.yaml``/``.yml`` file: flat, or nested as saved (``store:`` section)."""
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
    given = {f.name: getattr(args, f.name) for f, _ in config_fields() if hasattr(args, f.name)}
    base = load_config_file(args.config) if getattr(args, "config", None) else {}
    flat = dict(base)
    flat |= flat.pop("store", None) or {}
    return flat | given

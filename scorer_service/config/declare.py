"""How a setting is declared, and the one conversion between a configuration and its flat settings.

A configuration is a dataclass of settings and of groups of settings (each group a dataclass of its
own). Every setting has one flat name, ``{prefix}_{name}`` of its group's prefix and its own name
unless declared otherwise: the key it has in serialized settings (snapshots, ``info().config``,
REST create bodies, ``--config`` files) and, with dashes, its command-line flag. Settings given by
those flat names, nested by group (``{"budget": {"start": 0.5}}``) or both at once all convert through
:func:`nest`.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    key: str | None = None,
    choices: Callable[[], Iterable[str]] | None = None,
    parse: Callable[[str], Any] | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field with its user-facing description.

    ``key`` is the setting's flat name where it is not its group's prefix and its own name; ``flag``
    its command-line flag where that is not ``--`` and the flat name with dashes. ``choices`` is called
    when the flag is built (registries fill up at import); ``parse`` turns the flag's text into the
    value (default: the field's type); ``cli=False`` marks a field that is derived or set by the
    program, not by the user.
    """
    meta = {"help": help, "flag": flag, "key": key, "choices": choices, "parse": parse, "cli": cli}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def group(cls: type, *, prefix: str = "") -> Any:
    """A field holding a group of settings (``cls``, a dataclass of :func:`setting` fields, every one
    with a default); its settings' flat names start with ``prefix`` and ``_`` (none when empty)."""
    return field(default_factory=cls, metadata={"group": cls, "prefix": prefix})


@dataclass(frozen=True)
class Leaf:
    """One setting of a configuration: where it sits and what it is called outside."""

    group: str | None  # the group field holding it; None: a field of the configuration itself
    name: str  # its field name (in its group)
    key: str  # its flat name
    field: Field
    hint: Any

    @property
    def flag(self) -> str:
        return self.field.metadata.get("flag") or "--" + self.key.replace("_", "-")

    def get(self, config: Any) -> Any:
        holder = config if self.group is None else getattr(config, self.group)
        return getattr(holder, self.name)


@cache
def leaves(cls: type) -> tuple[Leaf, ...]:
    """Every setting of the configuration class ``cls``, groups' settings in their group's place."""
    out: list[Leaf] = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        inner = f.metadata.get("group")
        if inner is None:
            out.append(Leaf(None, f.name, f.metadata.get("key") or f.name, f, hints[f.name]))
            continue
        prefix, inner_hints = f.metadata["prefix"], typing.get_type_hints(inner)
        for g in fields(inner):
            key = g.metadata.get("key") or (f"{prefix}_{g.name}" if prefix else g.name)
            out.append(Leaf(f.name, g.name, key, g, inner_hints[g.name]))
    return tuple(out)


def _groups(cls: type) -> dict[str, type]:
    return {f.name: f.metadata["group"] for f in fields(cls) if "group" in f.metadata}


def settings_by_key(cls: type, settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Settings of the configuration class ``cls``, given by flat name, nested by group or both, by
    flat name (flat names override the same setting nested); and the names that are no setting."""
    by_key = {leaf.key: leaf for leaf in leaves(cls)}
    groups = _groups(cls)
    out: dict[str, Any] = {}
    unknown: list[str] = []
    flat = dict(settings)
    for name in [n for n, v in flat.items() if n in groups and _is_group_value(v)]:
        value = flat.pop(name)
        inner = flatten(value) if is_dataclass(value) else dict(value)
        keys = {leaf.name: leaf.key for leaf in by_key.values() if leaf.group == name}
        unknown += [f"{name}.{k}" for k in inner if k not in keys]
        out |= {keys[k]: v for k, v in inner.items() if k in keys}
    unknown += [k for k in flat if k not in by_key]
    return out | {k: v for k, v in flat.items() if k in by_key}, unknown


def nest(cls: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings of the configuration class ``cls`` in any form :func:`settings_by_key` takes, as
    ``cls``'s own fields: a dict per group, of the settings given.

    Raises:
        ValueError: a name that is no setting of ``cls``.
    """
    flat, unknown = settings_by_key(cls, settings)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    by_key = {leaf.key: leaf for leaf in leaves(cls)}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        leaf = by_key[key]
        if leaf.group is None:
            out[leaf.name] = value
        else:
            out.setdefault(leaf.group, {})[leaf.name] = value
    return out


def merge(cls: type, *parts: Mapping[str, Any]) -> dict[str, Any]:
    """``parts`` of settings of ``cls`` (each in any form :func:`nest` takes), later ones overriding
    earlier ones setting by setting, as :func:`nest` returns them."""
    groups = _groups(cls)
    out: dict[str, Any] = {}
    for part in parts:
        for name, value in nest(cls, part).items():
            out[name] = out.get(name, {}) | value if name in groups else value
    return out


def _is_group_value(value: Any) -> bool:
    return isinstance(value, Mapping) or (is_dataclass(value) and not isinstance(value, type))


def build(cls: type, settings: Mapping[str, Any]) -> Any:
    """An instance of ``cls`` from settings in any form :func:`nest` takes."""
    nested = nest(cls, settings)
    groups = _groups(cls)
    return cls(**{k: groups[k](**v) if k in groups else v for k, v in nested.items()})


def flatten(config: Any) -> dict[str, Any]:
    """The settings of ``config`` (a configuration or one group) by flat name; a group's by field name."""
    cls: type = type(config)
    if not any("group" in f.metadata for f in fields(cls)):
        return {f.name: getattr(config, f.name) for f in fields(cls)}
    return {leaf.key: _plain(leaf.get(config)) for leaf in leaves(cls)}


def _plain(value: Any) -> Any:
    # Serialized settings are copies: a dict setting must not alias the configuration's own.
    return dict(value) if isinstance(value, dict) else value

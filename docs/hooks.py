"""The docstrings are written for Python's help() and Sphinx-style readers: in the rendered reference a
role (``:class:`~curriculum.run.Run```) shows as its name in code, and ``Example::`` as a heading."""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):<code>~?([\w.]+)</code>")
EXAMPLE = re.compile(r"\bExample::</p>")


def _name(match: re.Match[str]) -> str:
    target = match.group(1)
    # "~" asks for the last part only, as Sphinx shows it.
    shown = target.rpartition(".")[2] if match.group(0).count("~") else target
    return f"<code>{shown}</code>"


def on_page_content(html: str, **_: Any) -> str:
    return EXAMPLE.sub("<strong>Example:</strong></p>", ROLE.sub(_name, html))

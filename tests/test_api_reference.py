"""The API reference (docs/api.md, built by mkdocs in CI) documents every public name of ``curriculum``
where it is defined, each with a structured docstring."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import curriculum

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ENTRIES = re.findall(r"^::: ([\w.]+)$", API.read_text(), flags=re.M)


def test_every_public_name_is_in_the_reference_once():
    documented = {path.rpartition(".")[2]: path.rpartition(".")[0] for path in ENTRIES}
    assert len(documented) == len(ENTRIES)
    assert documented == {name: curriculum._WHERE[name] for name in curriculum.__all__}


@pytest.mark.parametrize("path", ENTRIES)
def test_the_docstring_has_a_summary_and_an_example(path):
    module, _, name = path.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(obj)
    assert doc and doc.splitlines()[0].strip(), path
    assert "Example::\n\n" in doc, path
    if inspect.isfunction(obj) and inspect.signature(obj).parameters:
        assert "\nArgs:\n" in doc, path

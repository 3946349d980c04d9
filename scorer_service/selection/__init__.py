"""Selection: the selector registry, budget and learning-rate schedules, sampling, the diversity term
and round planning. Pure numpy; importing the package registers every selector."""

from scorer_service.selection import selectors as _selectors  # noqa: F401  (registers the selectors)
from scorer_service.selection.registry import (
    SELECTORS,
    SelectionContext,
    SelectorSpec,
    get_selector,
    selector_spec,
)

__all__ = ["SELECTORS", "SelectionContext", "SelectorSpec", "get_selector", "selector_spec"]

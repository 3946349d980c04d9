"""Selection: the selector registry, budget and learning-rate schedules, the diversity term, and the
protocol that selects a round over a store's shards. Pure numpy; importing the package registers
every selector."""

from scorer_service.selection import references as _references  # noqa: F401  (registers full, infobatch)
from scorer_service.selection import selectors as _selectors  # noqa: F401  (registers the selectors)
from scorer_service.selection.registry import (
    SELECTORS,
    KeyContext,
    Selection,
    SelectorSpec,
    get_selector,
    selector_spec,
)

__all__ = ["SELECTORS", "KeyContext", "Selection", "SelectorSpec", "get_selector", "selector_spec"]

"""Arrays the size of a shard that every selection needs again (a copy of DIH, keys, softmax terms),
kept from one round to the next.

A fresh array of 100 MB costs more than the pass that fills it: the kernel faults in and zeroes every
page (and, with transparent huge pages, at times stalls to compact memory first), all counted as the
shard's system time, which measured as much as its computing. A shard keeps one :class:`Scratch`;
a selection takes its temporaries from it by name, so a store of n samples holds a few bytes per
sample more and pays for its temporaries once.
"""

from __future__ import annotations

import numpy as np


class Scratch:
    """Named arrays handed out again and again; the caller overwrites what it takes."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, n: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
        """``n`` values of ``dtype`` under ``name``, uninitialized: the array given out last time
        under this name when it has that size and type (its contents are the caller's to replace)."""
        have = self._arrays.get(name)
        if have is None or have.shape != (n,) or have.dtype != np.dtype(dtype):
            self._arrays[name] = have = np.empty(n, dtype=dtype)
        return have

"""The training images of the built-in datasets, for the dashboard (numpy only: Serve replicas load it)."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as the ``digits`` dataset splits them.

    Returns ``(x_train, x_test, y_train, y_test)``.

    Fixed stratified split (seed 0): 1,437 train / 360 test; pixels scaled to [0, 1].
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float32) / 16.0
    return tuple(train_test_split(x, d.target, test_size=0.2, random_state=0, stratify=d.target))


def training_images(dataset: str, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Images and labels by sample id of the run's training data, when they are images we know."""
    if dataset != "digits":
        return None
    x, _, y, _ = digits_arrays()
    return (x, y) if len(x) == n else None

"""Which training labels are likely wrong, from the byproducts the store already keeps.

The small-loss criterion: networks fit clean samples long before they memorize mislabeled ones
(Arpit et al., ICML 2017), so over training a mislabeled sample's loss stays high (Han et al.,
Co-teaching, NeurIPS 2018). As DivideMix (Li, Socher & Hoi, ICLR 2020) and Arazo et al. (ICML
2019) do, a two-component Gaussian mixture is fitted to the per-sample loss rescaled to [0, 1];
a sample's noise probability is its posterior of the component with the larger mean. The loss
used is each sample's mean over all its observations (``loss_mean``), which separates mislabeled
samples better than the latest loss whatever the selector (on synthetic data with 40 % flipped
labels, AUROC 0.96 against 0.91 for dihcl-exp and 0.94 for SPL).

The mixture is fitted by EM to a fine histogram of the rescaled losses (:data:`BINS` bins), which
every shard of a store counts over its own samples: the counts add up exactly, so one store and any
number of shards fit the same mixture, and no shard sends more than the histogram. Each sample's
posterior is then computed where it is kept, from the fitted :class:`NoiseFit`.

A sample is *suspect* when its noise probability exceeds the threshold and, where the trainers
send correctness, the model's latest prediction disagrees with its label: a hard but correctly
labeled sample that the model gets right is not one.

The mixture finds a high-loss component on clean data too (hard, correctly labeled samples), so
leaving suspects out of the pool (``--denoise``) first needs evidence that labels are wrong at all:
the share of samples the model has never once predicted as labeled (wrong at every observation,
:func:`noise_rate_part`), measured when denoising would first act, must reach
:data:`NOISE_RATE_MIN`. After the warm start that share was 2-7 % on clean data (digits, synthetic,
images) and 20-23 % and 37-44 % with 20 % and 40 % of the labels flipped. Without correctness
byproducts there is no such evidence and the mixture alone decides.

Suspects leave the pool from the warm start's end, except in the last round of every selection
cycle of two or more rounds (not the run's last): there every sample is a candidate again, at the
cycle's lowest learning rate, so the passes over mislabeled samples move the model least, and every
suspect the selector picks is observed again by a model trained on the cleaner pool. A hard but
correctly labeled sample that the model now gets right stops being a suspect; left out for good, it
never would be, and under heavy noise those samples cost more accuracy than the mislabeled ones
kept in (BENCHMARKS.md "Outcomes").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from scorer_service.core.reduce import Aggregate, Count, Hist, Max, Min, combine

EM_ITERATIONS = 50
BINS = 16384
NOISE_RATE_MIN = 0.10


@dataclass(frozen=True)
class NoiseFit:
    """A fitted mixture over losses rescaled from ``[lo, hi]``; ``flat``: the losses do not spread
    (every seen sample gets 0)."""

    lo: float
    hi: float
    mu: tuple[float, float] = (0.0, 1.0)
    var: tuple[float, float] = (1.0, 1.0)
    weight: tuple[float, float] = (0.5, 0.5)
    flat: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseFit:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fields)


def _observed(loss_mean: np.ndarray, seen: np.ndarray) -> np.ndarray:
    observed: np.ndarray = (seen > 0) & np.isfinite(loss_mean)
    return observed


def range_part(loss_mean: np.ndarray, seen: np.ndarray) -> dict[str, Aggregate[Any]]:
    """One shard's partials of the loss range (see :mod:`.reduce`)."""
    x = loss_mean[_observed(loss_mean, seen)].astype(np.float64)
    return {"loss_min": Min.of(x), "loss_max": Max.of(x), "loss_count": Count(int(x.size))}


def histogram_part(
    loss_mean: np.ndarray, seen: np.ndarray, lo: float, hi: float
) -> dict[str, Aggregate[Any]]:
    """One shard's counts of the rescaled losses in :data:`BINS` bins over ``[lo, hi]``."""
    x = loss_mean[_observed(loss_mean, seen)].astype(np.float64)
    return {"loss_hist": Hist(_bin_counts(x, lo, hi))}


@nb.njit(cache=True, nogil=True)
def _bin_counts(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    counts = np.zeros(BINS, dtype=np.int64)
    for v in x:
        counts[min(int((v - lo) / (hi - lo) * BINS), BINS - 1)] += 1
    return counts


def fit(stats: dict[str, Any]) -> NoiseFit:
    """The mixture from the run's combined range and histogram (``None`` histogram: losses flat)."""
    lo, hi, count = stats["loss_min"], stats["loss_max"], stats["loss_count"]
    if count < 2 or not hi > lo:
        return NoiseFit(lo, hi)
    counts = stats["loss_hist"]
    # Empty bins weigh nothing in any sum below: EM runs over the others only (a run of 2,000
    # samples fills at most 2,000 of the 16,384 bins; the fit sits on the round's critical path).
    filled = np.flatnonzero(counts)
    w = counts[filled].astype(np.float64)
    x = (filled + 0.5) / BINS
    cum = np.cumsum(w) / w.sum()
    mu = x[np.searchsorted(cum, [0.25, 0.90])]
    mean = (w * x).sum() / w.sum()
    spread = (w * (x - mean) ** 2).sum() / w.sum()
    var = np.full(2, spread / 4 + 1e-12)
    floor = 1e-6 * spread + 1e-12
    mu, var, weight = _em(x, w, mu, var, np.array([0.5, 0.5]), floor, EM_ITERATIONS)
    return NoiseFit(lo, hi, tuple(mu.tolist()), tuple(var.tolist()), tuple(weight.tolist()), False)


@nb.njit(cache=True, nogil=True)
def _em(
    x: np.ndarray, w: np.ndarray, mu: np.ndarray, var: np.ndarray, weight: np.ndarray, floor: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Two passes over the bins per iteration and no temporaries: the fit is on the round's critical
    # path (numpy's version took 80 ms of a 30,000-sample round's end).
    total = w.sum()
    post = np.empty((x.shape[0], 2))
    base = np.empty(2)
    for _ in range(n):
        for c in range(2):
            base[c] = -0.5 * math.log(2 * math.pi * var[c]) + math.log(weight[c])
        mass = np.full(2, 1e-12)
        moment = np.zeros(2)
        for j in range(x.shape[0]):
            a = -0.5 * (x[j] - mu[0]) ** 2 / var[0] + base[0]
            b = -0.5 * (x[j] - mu[1]) ** 2 / var[1] + base[1]
            top = max(a, b)
            ea, eb = math.exp(a - top), math.exp(b - top)
            post[j, 0], post[j, 1] = w[j] * ea / (ea + eb), w[j] * eb / (ea + eb)
            for c in range(2):
                mass[c] += post[j, c]
                moment[c] += post[j, c] * x[j]
        weight = mass / total
        mu = moment / mass
        spread = np.zeros(2)
        for j in range(x.shape[0]):
            for c in range(2):
                spread[c] += post[j, c] * (x[j] - mu[c]) ** 2
        var = np.maximum(spread / mass, floor)
    return mu, var, weight


def posterior(loss_mean: np.ndarray, seen: np.ndarray, f: NoiseFit) -> np.ndarray:
    """Each sample's probability of the high-loss component under ``f``; NaN for samples never seen."""
    out = np.full(loss_mean.shape, np.nan, dtype=np.float32)
    ok = _observed(loss_mean, seen)
    if f.flat:
        out[ok] = 0.0
        return out
    high = int(np.argmax(f.mu))
    x = loss_mean[ok].astype(np.float64)
    out[ok] = _high_posterior(x, f.lo, f.hi, np.array(f.mu), np.array(f.var), np.array(f.weight), high)
    return out


@nb.njit(cache=True, nogil=True)
def _high_posterior(
    x: np.ndarray, lo: float, hi: float, mu: np.ndarray, var: np.ndarray, weight: np.ndarray, high: int
) -> np.ndarray:
    # One sample at a time with the C library's exp/log: the same value whichever shard computes it.
    out = np.empty(x.shape[0], dtype=np.float32)
    base = np.empty(2)
    for c in range(2):
        base[c] = -0.5 * math.log(2 * math.pi * var[c]) + math.log(weight[c])
    for j in range(x.shape[0]):
        v = (x[j] - lo) / (hi - lo)
        a = -0.5 * (v - mu[0]) ** 2 / var[0] + base[0]
        b = -0.5 * (v - mu[1]) ** 2 / var[1] + base[1]
        top = max(a, b)
        ea, eb = math.exp(a - top), math.exp(b - top)
        out[j] = (ea if high == 0 else eb) / (ea + eb)
    return out


def noise_probability(loss_mean: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The noise probability of every sample of one store (the fit and the posterior in one place)."""
    stats = combine([range_part(loss_mean, seen)])
    if stats["loss_count"] >= 2 and stats["loss_max"] > stats["loss_min"]:
        stats |= combine([histogram_part(loss_mean, seen, stats["loss_min"], stats["loss_max"])])
    return posterior(loss_mean, seen, fit(stats))


def noise_rate_part(last_correct: np.ndarray, flips: np.ndarray) -> dict[str, Aggregate[Any]]:
    """One shard's part of the label-noise rate estimate: how many samples have a known correctness,
    and how many of them were never predicted as labeled (wrong now, correctness never flipped)."""
    known = last_correct >= 0
    return {
        "correct_known": Count(int(known.sum())),
        "never_correct": Count(int(((last_correct == 0) & (flips == 0)).sum())),
    }


def labels_look_noisy(stats: dict[str, Any]) -> bool:
    """Whether the combined :func:`noise_rate_part` is evidence of wrong labels (no correctness
    known: no evidence against, the mixture alone decides)."""
    known: int = stats["correct_known"]
    never: int = stats["never_correct"]
    return known == 0 or never / known >= NOISE_RATE_MIN


def suspects(noise: np.ndarray, last_correct: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the samples whose label is likely wrong (see the module docstring)."""
    out = np.nan_to_num(noise, nan=0.0) > threshold
    known = last_correct >= 0
    suspect: np.ndarray = out & (~known | (last_correct == 0))
    return suspect

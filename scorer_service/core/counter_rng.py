"""Random numbers keyed by (seed, round, stream, sample id): a sample's draw does not depend on which
shard computes it, in what order, or how many shards there are.

Each value is a hash of its key (the splitmix64 finalizer of Steele, Lea & Flood 2014, as a
counter-based generator in the manner of Salmon et al. 2011), so selecting from a store split over
any number of shards draws exactly what one store would. Draws that need a variable number of
uniforms (Gamma by rejection) read a private splitmix64 stream started from the sample's key. The
loops are compiled and call the C library's ``log``/``exp`` one value at a time (no vectorized math
library), so every shard rounds every value the same way.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_G = np.uint64(_GOLDEN)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_UNIT = 2.0**-53

# Streams: independent draws of one round for different purposes.
KEYS, TRIM, BETA, CANDIDATES, PRUNE = range(5)


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def stream_key(seed: int, round_: int, stream: int) -> int:
    """The 64-bit key of one (seed, round, stream); sample ``i`` of it hashes ``key + (i + 1) * golden``."""
    h = _mix((int(seed) + _GOLDEN) & MASK64)
    h = _mix((h ^ (int(round_) * 0xD1B54A32D192ED03 + _GOLDEN)) & MASK64)
    return _mix((h ^ (int(stream) * 0xAEF17502108EF2D9 + 2 * _GOLDEN)) & MASK64)


@nb.njit(cache=True, nogil=True, inline="always")
def _mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(cache=True, nogil=True, inline="always")
def _unit(z: np.uint64) -> float:
    # (0, 1): the top 53 bits, offset by half a step so that neither end is reached.
    return (np.float64(z >> _S11) + 0.5) * _UNIT


@nb.njit(cache=True, nogil=True, inline="always")
def _hash(key: np.uint64, sample: np.int64) -> np.uint64:
    return _mix64(key + (np.uint64(sample) + np.uint64(1)) * _G)


@nb.njit(cache=True, nogil=True)
def _uniforms(key: np.uint64, first: np.int64, out: np.ndarray) -> None:
    for j in range(out.shape[0]):
        out[j] = _unit(_hash(key, first + j))


def uniforms(seed: int, round_: int, stream: int, first: int, count: int) -> np.ndarray:
    """Uniforms in (0, 1) of samples ``first .. first + count - 1``."""
    out = np.empty(count)  # numpy's allocation: huge pages (see radix.sortable)
    _uniforms(np.uint64(stream_key(seed, round_, stream)), np.int64(first), out)
    return out


@nb.njit(cache=True, nogil=True)
def _gumbel_keys(log_weights: np.ndarray, key: np.uint64, first: np.int64, out: np.ndarray) -> None:
    for j in range(log_weights.shape[0]):
        u = _unit(_hash(key, first + j))
        out[j] = log_weights[j] - math.log(-math.log(u))


def gumbel_keys(log_weights: np.ndarray, seed: int, round_: int, stream: int, first: int) -> np.ndarray:
    """``log_weights + Gumbel noise`` per sample: the top k of these are k successive draws without
    replacement with probabilities proportional to ``exp(log_weights)`` (Gumbel-top-k; Efraimidis &
    Spirakis 2006, Kool et al. 2019). ``-inf`` stays ``-inf`` (never ahead of a positive weight)."""
    w = np.ascontiguousarray(log_weights, dtype=np.float64)
    out = np.empty(w.shape[0])
    _gumbel_keys(w, np.uint64(stream_key(seed, round_, stream)), np.int64(first), out)
    return out


@nb.njit(cache=True, nogil=True, inline="always")
def exponential(key: np.uint64, sample: np.int64) -> float:
    """The Exp(1) draw of ``sample`` in the stream ``key`` (:func:`stream_key`), for compiled loops."""
    return -math.log(_unit(_hash(key, sample)))


@nb.njit(cache=True, nogil=True)
def _race_keys(weights: np.ndarray, key: np.uint64, first: np.int64, out: np.ndarray) -> None:
    for j in range(weights.shape[0]):
        out[j] = weights[j] / exponential(key, first + j)


def race_keys(
    weights: np.ndarray, seed: int, round_: int, stream: int, first: int, out: np.ndarray | None = None
) -> np.ndarray:
    """``weight / E`` per sample, ``E ~ Exp(1)``: the same law as :func:`gumbel_keys` of
    ``log(weights)``, since ``log(w / E) = log w + Gumbel``, with one logarithm per sample instead of
    three. Weights >= 0; a weight of 0 gets key 0 (drawn after every positive weight). ``out`` (may
    be ``weights`` itself) receives the keys."""
    w = np.asarray(weights, dtype=np.float64)
    out = np.empty(w.shape[0]) if out is None else out
    _race_keys(w, np.uint64(stream_key(seed, round_, stream)), np.int64(first), out)
    return out


@nb.njit(cache=True, nogil=True, inline="always")
def _next(state: np.uint64) -> tuple[np.uint64, float]:
    state = state + _G
    return state, _unit(_mix64(state))


@nb.njit(cache=True, nogil=True)
def _gamma(a: float, state: np.uint64) -> tuple[np.uint64, float]:
    """Gamma(a, 1) by Marsaglia & Tsang (2000); a < 1 through Gamma(a + 1) * U^(1/a)."""
    boost = 1.0
    if a < 1.0:
        state, u = _next(state)
        boost = u ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        state, u1 = _next(state)
        state, u2 = _next(state)
        x = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)  # Box-Muller
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        state, u = _next(state)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return state, d * v * boost


@nb.njit(cache=True, nogil=True)
def _betas(alpha: np.ndarray, beta: np.ndarray, key: np.uint64, first: np.int64) -> np.ndarray:
    out = np.empty(alpha.shape[0])
    for j in range(alpha.shape[0]):
        state = _hash(key, first + j)
        state, x = _gamma(alpha[j], state)
        state, y = _gamma(beta[j], state)
        out[j] = x / (x + y)
    return out


def betas(alpha: np.ndarray, beta: np.ndarray, seed: int, round_: int, stream: int, first: int) -> np.ndarray:
    """One draw of Beta(alpha_j, beta_j) per sample (as X / (X + Y) of two Gamma draws); parameters > 0."""
    a = np.ascontiguousarray(alpha, dtype=np.float64)
    b = np.ascontiguousarray(beta, dtype=np.float64)
    if a.size and (not (a > 0).all() or not (b > 0).all()):
        raise ValueError("Beta parameters must be positive")
    return _betas(a, b, np.uint64(stream_key(seed, round_, stream)), np.int64(first))

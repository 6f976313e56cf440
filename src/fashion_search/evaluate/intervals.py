"""Seeded bootstrap intervals over independent units (products, attribute combinations), and Wilson
score intervals for a share of yes/no outcomes.

A gallery's views of one product share a caption, and a shopper query's phrasings share
their relevant images: the unit that is independent is the product or the combination,
so the bootstrap resamples those, never the individual queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(values: Sequence[float], seed: int, resamples: int = RESAMPLES,
                   level: float = LEVEL) -> dict[str, float]:
    """The mean of per-unit values and its percentile bootstrap interval: {"mean", "low", "high"}."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap of no values")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = _percentiles(draws, level)
    return {"mean": float(values.mean()), "low": low, "high": high}


def bootstrap_mean_of_groups(groups: Sequence[Sequence[float]], seed: int, resamples: int = RESAMPLES,
                             level: float = LEVEL) -> dict[str, float]:
    """The mean of several groups' means (e.g. the 2- and 3-attribute families), each group's units
    resampled on its own: {"mean", "low", "high"}."""
    arrays = [np.asarray(group, dtype=np.float64) for group in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("bootstrap of an empty group")
    rng = np.random.default_rng(seed)
    draws = np.mean([a[rng.integers(a.size, size=(resamples, a.size))].mean(axis=1) for a in arrays], axis=0)
    low, high = _percentiles(draws, level)
    return {"mean": float(np.mean([a.mean() for a in arrays])), "low": low, "high": high}


def paired_difference(a: Sequence[float], b: Sequence[float], seed: int, resamples: int = RESAMPLES,
                      level: float = LEVEL) -> dict[str, float | bool]:
    """Mean of a - b over the same units, its paired bootstrap interval, and whether it excludes 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values must match: {a.shape} vs {b.shape}")
    interval = bootstrap_mean(a - b, seed, resamples, level)
    return {**interval, "excludes_0": bool(interval["low"] > 0 or interval["high"] < 0)}


def wilson_interval(successes: np.ndarray | int, trials: int, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval (low, high) of the share successes / trials, elementwise: unlike a
    bootstrap it stays honest at 0 and at every trial succeeding (40 of 40 is at least 0.91 at 95%)."""
    if trials < 1:
        raise ValueError(f"a share of {trials} trials")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    share = np.asarray(successes, dtype=np.float64) / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)

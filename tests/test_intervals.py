"""Bootstrap intervals against closed forms, the paired difference, and Wilson intervals at the edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fashion_search.evaluate.intervals import (
    bootstrap_mean,
    bootstrap_mean_of_groups,
    paired_difference,
    wilson_interval,
)


def test_bootstrap_of_a_binomial_matches_the_normal_interval() -> None:
    n, p = 400, 0.3
    values = np.array([1.0] * int(n * p) + [0.0] * int(n * (1 - p)))
    interval = bootstrap_mean(values, seed=42, resamples=4000)
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    assert interval["mean"] == pytest.approx(p)
    assert interval["low"] == pytest.approx(p - half, abs=0.01)
    assert interval["high"] == pytest.approx(p + half, abs=0.01)


def test_same_seed_same_interval() -> None:
    values = np.random.default_rng(0).random(50)
    assert bootstrap_mean(values, 7) == bootstrap_mean(values, 7)


def test_identical_models_give_a_difference_interval_around_zero() -> None:
    values = np.random.default_rng(1).random(140)
    difference = paired_difference(values, values, seed=42)
    assert difference["low"] == difference["high"] == 0.0 and not difference["excludes_0"]
    noisy = paired_difference(values, values + np.random.default_rng(2).normal(0, 0.01, 140), seed=42)
    assert noisy["low"] < 0 < noisy["high"] and not noisy["excludes_0"]


def test_a_clear_difference_excludes_zero() -> None:
    rng = np.random.default_rng(3)
    base = rng.random(140)
    assert paired_difference(base + 0.2, base, seed=42)["excludes_0"]


def test_mean_of_groups_weights_each_group_equally() -> None:
    interval = bootstrap_mean_of_groups([[1.0] * 10, [0.0] * 90], seed=0)
    assert interval == {"mean": 0.5, "low": 0.5, "high": 0.5}
    with pytest.raises(ValueError):
        bootstrap_mean_of_groups([[1.0], []], seed=0)


def test_wilson_intervals_stay_inside_0_and_1_and_are_honest_at_the_edges() -> None:
    low, high = wilson_interval(np.array([0, 20, 40]), 40)
    assert low[0] == pytest.approx(0.0, abs=1e-12) and high[0] == pytest.approx(0.0876, abs=1e-4)
    assert low[1] == pytest.approx(0.3520, abs=1e-4) and high[1] == pytest.approx(0.6480, abs=1e-4)
    assert low[2] == pytest.approx(0.9124, abs=1e-4) and high[2] == pytest.approx(1.0)  # 40 of 40 is not a certainty
    with pytest.raises(ValueError):
        wilson_interval(0, 0)

"""Bounded, seeded, vectorised simulations: A/A false-positive rates and CI coverage."""

from __future__ import annotations

import numpy as np
import pytest

from splitlab.stats import (
    CovariateStats,
    RatioStats,
    SampleStats,
    cuped_test,
    ratio_test,
    sequential_test,
    welch_ttest,
    ztest_proportions,
)

ALPHA = 0.05
RUNS = 20_000


def _covers(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.mark.parametrize("p_t", [0.10, 0.11])
def test_ztest_false_positives_and_coverage(p_t: float) -> None:
    rng = np.random.default_rng(1)
    n = 2000
    x_c = rng.binomial(n, 0.10, 2 * RUNS)
    x_t = rng.binomial(n, p_t, 2 * RUNS)
    result = ztest_proportions(SampleStats(n, x_c, x_c), SampleStats(n, x_t, x_t))
    if p_t == 0.10:
        assert np.mean(result.p_value < ALPHA) == pytest.approx(ALPHA, abs=0.01)
    assert _covers(result.abs_ci_low, result.abs_ci_high, p_t - 0.10) == pytest.approx(
        0.95, abs=0.01
    )
    assert _covers(result.rel_ci_low, result.rel_ci_high, p_t / 0.10 - 1) == pytest.approx(
        0.95, abs=0.01
    )


@pytest.mark.parametrize("lift", [0.0, 0.1])
def test_welch_on_skewed_data(lift: float) -> None:
    rng = np.random.default_rng(2)
    control = SampleStats.from_values(rng.exponential(1.0, (RUNS, 200)))
    treatment = SampleStats.from_values(rng.exponential(1.0 + lift, (RUNS, 300)))
    result = welch_ttest(control, treatment)
    if lift == 0.0:
        assert np.mean(result.p_value < ALPHA) == pytest.approx(ALPHA, abs=0.01)
    assert _covers(result.abs_ci_low, result.abs_ci_high, lift) == pytest.approx(0.95, abs=0.01)
    assert _covers(result.rel_ci_low, result.rel_ci_high, lift) == pytest.approx(0.95, abs=0.01)


@pytest.mark.parametrize("lift", [0.0, 0.2])
def test_cuped(lift: float) -> None:
    rng = np.random.default_rng(3)

    def arm(n: int, shift: float) -> CovariateStats:
        x = rng.normal(5.0, 1.0, (RUNS, n))
        y = 0.8 * x + 0.6 * rng.normal(size=(RUNS, n)) + shift
        return CovariateStats.from_values(y, x)

    result = cuped_test(arm(200, 0.0), arm(200, lift))
    if lift == 0.0:
        assert np.mean(result.p_value < ALPHA) == pytest.approx(ALPHA, abs=0.01)
    assert float(np.median(result.variance_reduction)) == pytest.approx(0.64, abs=0.02)
    assert _covers(result.abs_ci_low, result.abs_ci_high, lift) == pytest.approx(0.95, abs=0.01)
    assert _covers(result.rel_ci_low, result.rel_ci_high, lift / 4.0) == pytest.approx(
        0.95, abs=0.01
    )


@pytest.mark.parametrize("click_rate", [0.3, 0.33])
def test_ratio(click_rate: float) -> None:
    rng = np.random.default_rng(4)

    def arm(rate: float) -> RatioStats:
        sessions = 1.0 + rng.poisson(2.0, (RUNS, 300))
        clicks = rng.binomial(sessions.astype(np.int64), rate).astype(float)
        return RatioStats.from_values(clicks, sessions)

    result = ratio_test(arm(0.3), arm(click_rate))
    if click_rate == 0.3:
        assert np.mean(result.p_value < ALPHA) == pytest.approx(ALPHA, abs=0.01)
    truth = click_rate - 0.3
    assert _covers(result.abs_ci_low, result.abs_ci_high, truth) == pytest.approx(0.95, abs=0.01)
    assert _covers(result.rel_ci_low, result.rel_ci_high, truth / 0.3) == pytest.approx(
        0.95, abs=0.01
    )


def _daily_cumulative_normal(rng: np.random.Generator, days: int, per_day: int) -> SampleStats:
    # Exact sufficient statistics of N(10, 1) data per day: Σy ~ N(10 n, n), and the
    # centred sum of squares ~ χ²(n − 1), independent of Σy.
    centred_sum = rng.normal(0.0, np.sqrt(per_day), (RUNS, days))
    centred_ss = rng.chisquare(per_day - 1, (RUNS, days)) + centred_sum**2 / per_day
    n = np.cumsum(np.full((RUNS, days), float(per_day)), axis=1)
    s = np.cumsum(centred_sum, axis=1)
    ss = np.cumsum(centred_ss, axis=1)
    return SampleStats(n, s + 10.0 * n, ss + 20.0 * s + 100.0 * n)


def test_sequential_with_daily_peeking_controls_false_positives() -> None:
    """A confidence sequence bounds the peeking false-positive rate by α; it is conservative
    (its level holds over an unbounded horizon), so over 14 looks the rate is below α,
    while peeking at a fixed-horizon Welch test inflates it several-fold."""
    rng = np.random.default_rng(5)
    control = _daily_cumulative_normal(rng, 14, 200)
    treatment = _daily_cumulative_normal(rng, 14, 200)
    sequential = sequential_test(control, treatment, alpha=ALPHA, tuning=5000)
    peeking_fp = np.mean(np.any(sequential.p_value < ALPHA, axis=1))
    assert 0.002 < peeking_fp <= ALPHA + 0.01
    assert peeking_fp == pytest.approx(0.0099, abs=0.003)  # pinned for this seed and design
    covered_every_day = np.all((sequential.abs_ci_low <= 0) & (sequential.abs_ci_high >= 0), axis=1)
    assert np.mean(covered_every_day) >= 0.95
    naive = welch_ttest(control, treatment)
    assert np.mean(np.any(naive.p_value < ALPHA, axis=1)) > 0.15
    assert np.mean(naive.p_value[:, -1] < ALPHA) == pytest.approx(ALPHA, abs=0.01)

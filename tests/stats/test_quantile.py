"""Quantile differences from warehouse aggregates (Deng, Knoblich & Lu 2018)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from splitlab.stats import QuantileStats, quantile_ranks, quantile_test


def test_quantile_ranks() -> None:
    low, high = quantile_ranks(10_000, 0.9, alpha=0.05)
    half = 1.959963984540054 * np.sqrt(0.9 * 0.1 / 10_000)
    assert float(low) == pytest.approx(0.9 - half) and float(high) == pytest.approx(0.9 + half)
    low, high = quantile_ranks(3, 0.99)
    assert float(high) == 1.0 and 0 <= float(low) < 0.99


def test_from_values_uses_linear_interpolation(rng: np.random.Generator) -> None:
    values = rng.exponential(size=500)
    stats = QuantileStats.from_values(values, 0.9)
    low, high = quantile_ranks(500, 0.9)
    assert float(stats.estimate) == pytest.approx(np.quantile(values, 0.9))
    assert float(stats.lower) == pytest.approx(np.quantile(values, float(low)))
    assert float(stats.upper) == pytest.approx(np.quantile(values, float(high)))
    assert float(stats.n) == 500.0


def test_standard_error_close_to_asymptotic(rng: np.random.Generator) -> None:
    # SE of the sample median of N(0, 1): √(q(1−q)/n) / φ(0)
    values = rng.normal(size=(200, 20_000))
    stats = QuantileStats.from_values(values, 0.5)
    asymptotic = np.sqrt(0.25 / 20_000) / sps.norm.pdf(0)
    assert float(np.median(stats.standard_error)) == pytest.approx(asymptotic, rel=0.03)


def test_quantile_test_pinned() -> None:
    control = QuantileStats(n=1000, estimate=10.0, lower=9.0, upper=11.0)
    treatment = QuantileStats(n=1000, estimate=12.0, lower=10.5, upper=13.5)
    result = quantile_test(control, treatment)
    z = 1.959963984540054
    se_c, se_t = 2.0 / (2 * z), 3.0 / (2 * z)
    se = np.sqrt(se_c**2 + se_t**2)
    assert float(result.abs_effect) == 2.0
    assert float(result.abs_ci_low) == pytest.approx(2.0 - z * se)
    assert float(result.statistic) == pytest.approx(2.0 / se)
    assert float(result.p_value) == pytest.approx(2 * sps.norm.sf(2.0 / se))
    rel_se = np.sqrt(se_t**2 / 100 + 144 * se_c**2 / 10_000)
    assert float(result.rel_ci_high) == pytest.approx(0.2 + z * rel_se)


def test_quantile_degenerate() -> None:
    tied = QuantileStats(n=[1, 100], estimate=[5.0, 5.0], lower=[5.0, 5.0], upper=[5.0, 5.0])
    result = quantile_test(tied, tied)
    assert list(result.reason) == ["n_below_2", "empty_order_statistic_interval"]
    assert np.all(np.isnan(result.p_value))


@pytest.mark.parametrize(
    ("q", "n", "runs"),
    [(0.5, 1000, 8000), (0.9, 1000, 8000), (0.95, 1000, 8000), (0.99, 5000, 2500)],
)
def test_coverage_on_lognormal_latency(q: float, n: int, runs: int) -> None:
    rng = np.random.default_rng(int(q * 1000) + n)
    true_control = np.exp(sps.norm.ppf(q))  # lognormal(0, 1) quantile
    control = QuantileStats.from_values(rng.lognormal(0.0, 1.0, (runs, n)), q)
    treatment = QuantileStats.from_values(rng.lognormal(0.1, 1.0, (runs, n)), q)
    result = quantile_test(control, treatment)
    true_diff = true_control * (np.exp(0.1) - 1)
    abs_cover = np.mean((result.abs_ci_low <= true_diff) & (true_diff <= result.abs_ci_high))
    rel_cover = np.mean(
        (result.rel_ci_low <= np.exp(0.1) - 1) & (np.exp(0.1) - 1 <= result.rel_ci_high)
    )
    assert abs_cover == pytest.approx(0.95, abs=0.01)
    assert rel_cover == pytest.approx(0.95, abs=0.01)

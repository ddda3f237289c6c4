"""Sufficient statistics: derived values, merging and construction from raw values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitlab.stats import CovariateStats, RatioStats, SampleStats

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def test_mean_and_variance_match_numpy(rng: np.random.Generator) -> None:
    values = rng.normal(3.0, 2.0, size=(4, 50))
    stats = SampleStats.from_values(values)
    np.testing.assert_allclose(stats.mean, values.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(stats.variance, values.var(axis=1, ddof=1), rtol=1e-10)
    assert stats.n.shape == (4,)


def test_pinned_values() -> None:
    stats = SampleStats.from_values([1.0, 2.0, 4.0])
    assert float(stats.mean) == pytest.approx(7.0 / 3.0)
    assert float(stats.variance) == pytest.approx(7.0 / 3.0)  # ((−4/3)²+(−1/3)²+(5/3)²)/2


def test_binary_metric_has_sum_sq_equal_sum() -> None:
    stats = SampleStats(n=10, sum=3, sum_sq=3)
    assert float(stats.variance) == pytest.approx(0.3 * 0.7 * 10 / 9)


def test_constant_data_has_exactly_zero_variance() -> None:
    stats = SampleStats.from_values(np.full(1000, 0.1))
    assert float(stats.variance) == 0.0


def test_variance_is_nan_below_two_units() -> None:
    assert np.isnan(SampleStats(1, 5.0, 25.0).variance)
    assert np.isnan(SampleStats(0, 0.0, 0.0).mean)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=30), st.lists(finite, min_size=1, max_size=30))
def test_merged_stats_equal_stats_of_merged_data(left: list[float], right: list[float]) -> None:
    merged = SampleStats.from_values(left) + SampleStats.from_values(right)
    direct = SampleStats.from_values(left + right)
    assert float(merged.n) == float(direct.n)
    assert float(merged.sum) == pytest.approx(float(direct.sum), abs=1e-9)
    assert float(merged.sum_sq) == pytest.approx(float(direct.sum_sq), rel=1e-12, abs=1e-9)
    if len(left) + len(right) >= 2:
        scale = max(1.0, float(direct.sum_sq))
        assert float(merged.variance) == pytest.approx(float(direct.variance), abs=1e-9 * scale)


def test_covariate_stats_match_numpy(rng: np.random.Generator) -> None:
    x = rng.normal(size=200)
    y = 2.0 * x + rng.normal(size=200)
    stats = CovariateStats.from_values(y, x)
    assert float(stats.covariance) == pytest.approx(np.cov(x, y)[0, 1], rel=1e-10)
    assert float(stats.correlation) == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-10)
    merged = CovariateStats.from_values(y[:50], x[:50]) + CovariateStats.from_values(y[50:], x[50:])
    assert float(merged.sum_xy) == pytest.approx(float(stats.sum_xy))


def test_ratio_stats_delta_method_variance(rng: np.random.Generator) -> None:
    num = rng.poisson(4.0, 500).astype(float)
    den = rng.poisson(2.0, 500).astype(float) + 1.0
    stats = RatioStats.from_values(num, den)
    mu_n, mu_d = num.mean(), den.mean()
    cov = np.cov(num, den)
    expected = cov[0, 0] / mu_d**2 - 2 * mu_n * cov[0, 1] / mu_d**3 + mu_n**2 * cov[1, 1] / mu_d**4
    assert float(stats.mean) == pytest.approx(num.sum() / den.sum())
    assert float(stats.variance) == pytest.approx(expected, rel=1e-10)


def test_ratio_with_zero_denominator_is_nan() -> None:
    stats = RatioStats(n=5, sum_num=3, sum_num_sq=3, sum_den=0, sum_den_sq=0, sum_num_den=0)
    assert np.isnan(stats.mean)
    assert np.isnan(stats.variance)


def test_merge_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        SampleStats(2, 1, 1) + RatioStats(2, 1, 1, 1, 1, 1)  # type: ignore[operator]

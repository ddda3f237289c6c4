"""CUPED regression adjustment and delta-method ratio metrics, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from splitlab.stats import (
    CovariateStats,
    RatioStats,
    SampleStats,
    cuped_test,
    ratio_test,
    welch_ttest,
)


def _correlated(rng: np.random.Generator, n: int, rho: float, shift: float = 0.0):
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n) + 10.0 + shift
    return y, x


def test_cuped_equals_welch_on_hand_adjusted_values(rng: np.random.Generator) -> None:
    y_c, x_c = _correlated(rng, 400, 0.6)
    y_t, x_t = _correlated(rng, 300, 0.6, shift=0.2)
    x_all, y_all = np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t])
    theta = np.cov(x_all, y_all)[0, 1] / np.var(x_all, ddof=1)
    adj_c = y_c - theta * (x_c - x_all.mean())
    adj_t = y_t - theta * (x_t - x_all.mean())
    ref = sps.ttest_ind(adj_t, adj_c, equal_var=False)
    result = cuped_test(CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_t, x_t))
    assert float(result.theta) == pytest.approx(theta, rel=1e-9)
    assert float(result.control_mean) == pytest.approx(adj_c.mean(), rel=1e-12)
    assert float(result.treatment_mean) == pytest.approx(adj_t.mean(), rel=1e-12)
    assert float(result.statistic) == pytest.approx(ref.statistic, rel=1e-9)
    assert float(result.p_value) == pytest.approx(ref.pvalue, rel=1e-9)
    assert float(result.df) == pytest.approx(ref.df, rel=1e-9)
    ci = ref.confidence_interval()
    assert float(result.abs_ci_low) == pytest.approx(ci.low, rel=1e-9)
    assert float(result.abs_ci_high) == pytest.approx(ci.high, rel=1e-9)
    unadjusted = np.var(y_c, ddof=1) / 400 + np.var(y_t, ddof=1) / 300
    adjusted = np.var(adj_c, ddof=1) / 400 + np.var(adj_t, ddof=1) / 300
    assert float(result.variance_reduction) == pytest.approx(1 - adjusted / unadjusted, rel=1e-9)


def test_cuped_variance_reduction_is_rho_squared(rng: np.random.Generator) -> None:
    rho = 0.7
    y_c, x_c = _correlated(rng, 200_000, rho)
    y_t, x_t = _correlated(rng, 200_000, rho)
    result = cuped_test(CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_t, x_t))
    assert float(result.variance_reduction) == pytest.approx(rho**2, abs=0.01)
    assert float(result.theta) == pytest.approx(rho, abs=0.01)


def test_cuped_with_useless_covariate_matches_welch(rng: np.random.Generator) -> None:
    y_c, y_t = rng.normal(size=500), rng.normal(0.1, 1, size=600)
    zero_c, zero_t = np.zeros(500), np.zeros(600)
    cuped = cuped_test(
        CovariateStats.from_values(y_c, zero_c), CovariateStats.from_values(y_t, zero_t)
    )
    welch = welch_ttest(SampleStats.from_values(y_c), SampleStats.from_values(y_t))
    assert float(cuped.theta) == 0.0
    assert float(cuped.variance_reduction) == 0.0
    for field in ("abs_effect", "abs_ci_low", "statistic", "p_value", "df", "rel_ci_high"):
        assert float(getattr(cuped, field)) == pytest.approx(float(getattr(welch, field)))


def test_cuped_degenerate() -> None:
    one = CovariateStats(1, 1, 1, 1, 1, 1)
    ok = CovariateStats(10, 10, 20, 5, 5, 5)
    result = cuped_test(one, ok)
    assert result.reason == "n_below_2"
    assert np.isnan(result.variance_reduction) and np.isnan(result.p_value)


def test_ratio_delta_method_by_hand() -> None:
    # Three units per arm: (numerator, denominator) per unit.
    num_c, den_c = np.array([2.0, 3.0, 7.0]), np.array([1.0, 2.0, 3.0])
    num_t, den_t = np.array([4.0, 1.0, 6.0, 5.0]), np.array([2.0, 1.0, 2.0, 3.0])

    def by_hand(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
        n = len(num)
        r = num.sum() / den.sum()
        mu_d = den.mean()
        s_nn, s_dd = num.var(ddof=1), den.var(ddof=1)
        s_nd = np.cov(num, den)[0, 1]
        return r, (s_nn - 2 * r * s_nd + r * r * s_dd) / (n * mu_d**2)

    r_c, v_c = by_hand(num_c, den_c)
    r_t, v_t = by_hand(num_t, den_t)
    assert r_c == pytest.approx(2.0) and r_t == pytest.approx(2.0)
    result = ratio_test(RatioStats.from_values(num_c, den_c), RatioStats.from_values(num_t, den_t))
    se = np.sqrt(v_c + v_t)
    assert float(result.abs_effect) == pytest.approx(r_t - r_c, abs=1e-12)
    assert float(result.abs_ci_high) == pytest.approx(1.959963984540054 * se, rel=1e-9)
    assert float(result.p_value) == pytest.approx(1.0)
    rel_se = np.sqrt(v_t / r_c**2 + r_t**2 * v_c / r_c**4)
    assert float(result.rel_ci_high) == pytest.approx(1.959963984540054 * rel_se, rel=1e-9)
    assert np.isnan(result.df)


def test_ratio_with_unit_denominator_is_the_z_version_of_welch(rng: np.random.Generator) -> None:
    a, b = rng.exponential(2.0, 300), rng.exponential(2.2, 350)
    ratio = ratio_test(
        RatioStats.from_values(a, np.ones(300)), RatioStats.from_values(b, np.ones(350))
    )
    welch = welch_ttest(SampleStats.from_values(a), SampleStats.from_values(b))
    assert float(ratio.statistic) == pytest.approx(float(welch.statistic), rel=1e-9)
    assert float(ratio.p_value) == pytest.approx(2 * sps.norm.sf(abs(float(welch.statistic))))


def test_ratio_degenerate() -> None:
    zero_den = RatioStats(10, 5, 5, 0, 0, 0)
    ok = RatioStats(10, 5, 5, 10, 10, 5)
    constant = RatioStats(10, 20, 40, 10, 10, 20)  # every unit has num = 2, den = 1
    result = ratio_test(RatioStats([1, 10], [1, 20], [1, 40], [1, 10], [1, 10], [1, 20]), constant)
    assert list(result.reason) == ["n_below_2", "zero_variance"]
    assert np.all(np.isnan(result.p_value))
    assert ratio_test(zero_den, ok).reason == "zero_denominator_mean"


def test_cuped_arms_are_the_adjusted_values_mean_and_its_variance(
    rng: np.random.Generator,
) -> None:
    from statsmodels.stats.weightstats import DescrStatsW

    from splitlab.stats.cuped import cuped_arms

    y_c, x_c = _correlated(rng, 400, 0.6)
    y_t, x_t = _correlated(rng, 300, 0.6, shift=0.2)
    x_all, y_all = np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t])
    theta = np.cov(x_all, y_all)[0, 1] / np.var(x_all, ddof=1)
    control, treatment = CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_t, x_t)
    arms = cuped_arms(control, treatment)
    for adjusted, mean, var in (
        (y_c - theta * (x_c - x_all.mean()), arms.control_mean, arms.control_var),
        (y_t - theta * (x_t - x_all.mean()), arms.treatment_mean, arms.treatment_var),
    ):
        described = DescrStatsW(adjusted)
        assert float(mean) == pytest.approx(described.mean, rel=1e-12)
        assert float(var) == pytest.approx(described.std_mean**2, rel=1e-9)
    test = cuped_test(control, treatment)
    assert float(arms.theta) == pytest.approx(float(test.theta), rel=1e-12)
    assert float(test.abs_ci_high - test.abs_effect) == pytest.approx(
        sps.t.ppf(0.975, float(test.df)) * np.sqrt(arms.control_var + arms.treatment_var),
        rel=1e-9,
    )

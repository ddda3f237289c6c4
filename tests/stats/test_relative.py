"""Relative-effect intervals (delta, Fieller, log) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.proportion import confint_proportions_2indep

from splitlab.stats import SampleStats, relative_interval, welch_ttest


def _fieller_by_inversion(
    m_c: float, m_t: float, v_c: float, v_t: float, crit: float
) -> tuple[float, float]:
    """Fieller's set found numerically: the ρ where the test of m_t − ρ m_c = 0 has |t| = crit."""

    def excess(rho: float) -> float:
        return (m_t - rho * m_c) ** 2 / (v_t + rho * rho * v_c) - crit * crit

    centre = m_t / m_c
    low = optimize.brentq(excess, centre - 50.0, centre, xtol=1e-14)
    high = optimize.brentq(excess, centre, centre + 50.0, xtol=1e-14)
    return low - 1.0, high - 1.0


@pytest.mark.parametrize(
    ("m_c", "m_t", "v_c", "v_t"),
    [(10.0, 11.0, 0.25, 0.3), (2.0, 1.7, 0.09, 0.04), (-5.0, -6.0, 0.4, 0.5), (1.0, 1.0, 0.1, 0.1)],
)
def test_fieller_matches_test_inversion(m_c: float, m_t: float, v_c: float, v_t: float) -> None:
    crit = float(stats.norm.ppf(0.975))
    low, high = relative_interval(m_c, m_t, v_c, v_t, method="fieller")
    expected = _fieller_by_inversion(m_c, m_t, v_c, v_t, crit)
    assert (float(low), float(high)) == pytest.approx(expected, rel=1e-10)


def test_fieller_with_welch_degrees_of_freedom() -> None:
    rng = np.random.default_rng(5)
    control = SampleStats.from_values(rng.exponential(2.0, 40))
    treatment = SampleStats.from_values(rng.exponential(2.6, 55))
    welch = welch_ttest(control, treatment)
    v_c, v_t = control.variance / control.n, treatment.variance / treatment.n
    low, high = relative_interval(
        control.mean, treatment.mean, v_c, v_t, method="fieller", df=welch.df
    )
    crit = float(stats.t.ppf(0.975, float(welch.df)))
    expected = _fieller_by_inversion(
        float(control.mean), float(treatment.mean), float(v_c), float(v_t), crit
    )
    assert (float(low), float(high)) == pytest.approx(expected, rel=1e-10)
    # The delta interval of the t-test is the method="delta" one.
    delta = relative_interval(control.mean, treatment.mean, v_c, v_t, method="delta", df=welch.df)
    assert float(delta[0]) == pytest.approx(float(welch.rel_ci_low), rel=1e-12)
    assert float(delta[1]) == pytest.approx(float(welch.rel_ci_high), rel=1e-12)


def test_pinned_numbers() -> None:
    """Pinned once from the closed forms (z = 1.959964) and cross-checked above."""
    args = (10.0, 11.0, 0.25, 0.3)
    assert relative_interval(*args, method="fieller") == pytest.approx(
        (-0.04257517, 0.26390806), abs=1e-8
    )
    assert relative_interval(*args, method="log") == pytest.approx(
        (-0.04208244, 0.26315672), abs=1e-8
    )
    assert relative_interval(*args, method="delta") == pytest.approx(
        (-0.05213412, 0.25213412), abs=1e-8
    )


def test_log_is_statsmodels_katz_interval_for_proportions() -> None:
    x_t, x_c, n = 130, 100, 1000
    p_t, p_c = x_t / n, x_c / n
    low, high = relative_interval(
        p_c, p_t, p_c * (1 - p_c) / n, p_t * (1 - p_t) / n, method="log", alpha=0.1
    )
    ref_low, ref_high = confint_proportions_2indep(
        x_t, n, x_c, n, compare="ratio", method="log", alpha=0.1
    )
    assert float(low) == pytest.approx(ref_low - 1.0, rel=1e-12)
    assert float(high) == pytest.approx(ref_high - 1.0, rel=1e-12)


def test_vectorised_and_degenerate() -> None:
    m_c = np.array([10.0, 0.1, 0.0, np.nan, 10.0])
    m_t = np.array([11.0, 11.0, 1.0, 1.0, -1.0])
    low, high = relative_interval(m_c, m_t, 0.25, 0.3, method="fieller")
    assert low.shape == (5,)
    assert np.isfinite(low[0]) and np.isfinite(high[0])
    assert (low[1], high[1]) == (-np.inf, np.inf)  # control mean not distinguishable from 0
    assert np.isnan(low[2:4]).all() and np.isnan(high[2:4]).all()
    log_low, _ = relative_interval(m_c, m_t, 0.25, 0.3, method="log")
    assert np.isnan(log_low[4])  # ratio of opposite signs has no log


def test_one_sided_bound() -> None:
    low, high = relative_interval(10.0, 11.0, 0.25, 0.3, alternative="greater")
    two_sided_90 = relative_interval(10.0, 11.0, 0.25, 0.3, alpha=0.1)
    assert float(low) == pytest.approx(float(two_sided_90[0]))
    assert float(high) == np.inf
    with pytest.raises(ValueError, match="method"):
        relative_interval(1.0, 1.0, 0.1, 0.1, method="wald")  # type: ignore[arg-type]


def test_relative_effect_variance_is_the_delta_method() -> None:
    from splitlab.stats.relative import relative_effect_variance

    m_c, m_t = np.array([10.0, 2.0, -5.0]), np.array([11.0, 1.7, -6.0])
    v_c, v_t = np.array([0.25, 0.09, 0.4]), np.array([0.3, 0.04, 0.5])
    variance = relative_effect_variance(m_c, m_t, v_c, v_t)
    # gradient of m_t / m_c − 1 taken numerically, then g' Σ g with independent arms
    h = 1e-6
    d_c = ((m_t / (m_c + h)) - (m_t / (m_c - h))) / (2 * h)
    d_t = (((m_t + h) / m_c) - ((m_t - h) / m_c)) / (2 * h)
    np.testing.assert_allclose(variance, d_c**2 * v_c + d_t**2 * v_t, rtol=1e-6)
    low, high = relative_interval(m_c, m_t, v_c, v_t, method="delta")
    np.testing.assert_allclose(high - low, 2 * stats.norm.ppf(0.975) * np.sqrt(variance))
    with np.errstate(all="raise"):
        assert not np.isfinite(relative_effect_variance(0.0, 1.0, 0.1, 0.1))

"""Gaussian-effect Bayesian test, probability of being best and Thompson weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from splitlab.stats import (
    SampleStats,
    bayesian_test,
    beta_posteriors,
    probability_best,
    thompson_weights,
)


def test_improper_prior_posterior_is_the_data(rng: np.random.Generator) -> None:
    a, b = rng.normal(10, 3, 400), rng.normal(10.5, 3, 420)
    result = bayesian_test(SampleStats.from_values(a), SampleStats.from_values(b), relative=False)
    mean = b.mean() - a.mean()
    sd = np.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 420)
    assert float(result.effect) == pytest.approx(mean, rel=1e-12)
    assert float(result.effect_sd) == pytest.approx(sd, rel=1e-12)
    assert float(result.chance_to_win) == pytest.approx(sps.norm.cdf(mean / sd), rel=1e-12)
    assert float(result.ci_low) == pytest.approx(mean - 1.959963984540054 * sd, rel=1e-12)


def test_relative_effect_uses_delta_method() -> None:
    control, treatment = SampleStats(1000, 100, 100), SampleStats(1000, 120, 120)
    result = bayesian_test(control, treatment)
    v_c, v_t = control.variance / 1000, treatment.variance / 1000
    variance = v_t / 0.1**2 + 0.12**2 * v_c / 0.1**4
    assert float(result.effect) == pytest.approx(0.2)
    assert float(result.effect_sd) == pytest.approx(np.sqrt(variance))
    assert float(result.chance_to_win) == pytest.approx(sps.norm.cdf(0.2 / np.sqrt(variance)))
    assert float(result.chance_to_win) == pytest.approx(0.9037892608, rel=1e-9)


def test_proper_prior_is_precision_weighted() -> None:
    control, treatment = SampleStats(1000, 100, 100), SampleStats(1000, 120, 120)
    flat = bayesian_test(control, treatment)
    prior = bayesian_test(control, treatment, prior_mean=0.0, prior_variance=0.1**2)
    v_data = float(flat.effect_sd) ** 2
    post_var = 1 / (1 / v_data + 1 / 0.01)
    assert float(prior.effect_sd) ** 2 == pytest.approx(post_var)
    assert float(prior.effect) == pytest.approx(post_var * float(flat.effect) / v_data)
    assert float(prior.effect) < float(flat.effect)


@pytest.mark.parametrize(("mu", "sd"), [(0.02, 0.05), (-0.03, 0.01), (0.0, 0.2)])
def test_risk_matches_numerical_integration(mu: float, sd: float) -> None:
    n = 10_000.0
    # Build arm statistics with exactly this absolute effect mean and standard error.
    var_each = sd**2 / 2 * n
    control = SampleStats(n, 0.0, var_each * (n - 1))
    treatment = SampleStats(n, mu * n, var_each * (n - 1) + (mu * n) ** 2 / n)
    result = bayesian_test(control, treatment, relative=False)
    assert float(result.effect) == pytest.approx(mu, abs=1e-12)
    assert float(result.effect_sd) == pytest.approx(sd, rel=1e-9)
    pdf = sps.norm(mu, sd).pdf
    lose_if_treatment = integrate.quad(lambda x: -x * pdf(x), -np.inf, 0)[0]
    lose_if_control = integrate.quad(lambda x: x * pdf(x), 0, np.inf)[0]
    assert float(result.risk_treatment) == pytest.approx(lose_if_treatment, rel=1e-7, abs=1e-12)
    assert float(result.risk_control) == pytest.approx(lose_if_control, rel=1e-7, abs=1e-12)


def test_bayesian_degenerate() -> None:
    result = bayesian_test(SampleStats([1, 10, 10], [1, 0, 5], [1, 0, 5]), SampleStats(10, 5, 5))
    assert list(result.reason) == ["n_below_2", "zero_control_mean", ""]
    assert np.all(np.isnan(result.chance_to_win[:2]))
    absolute = bayesian_test(SampleStats(10, 0, 0), SampleStats(10, 5, 5), relative=False)
    assert absolute.reason == "" and np.isfinite(absolute.chance_to_win)


def test_probability_best_two_arms_matches_closed_form() -> None:
    means, variances = np.array([0.0, 0.1]), np.array([0.01, 0.02])
    exact = sps.norm.cdf(0.1 / np.sqrt(0.03))
    estimate = probability_best(means, variances, draws=200_000, seed=1)
    assert estimate[1] == pytest.approx(exact, abs=0.005)
    assert estimate.sum() == pytest.approx(1.0)
    again = probability_best(means, variances, draws=200_000, seed=1)
    np.testing.assert_array_equal(estimate, again)


def test_probability_best_vectorised_and_nan() -> None:
    means = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, np.nan]])
    result = probability_best(means, np.ones((2, 3)) * 0.01, draws=30_000, seed=2)
    assert result[0] == pytest.approx([1 / 3] * 3, abs=0.01)
    assert np.all(np.isnan(result[1]))


def test_thompson_weights_floor_and_normalise() -> None:
    weights = thompson_weights([0.0, 0.5, 1.0, -5.0], [0.01] * 4, min_weight=0.05, seed=3)
    assert weights.sum() == pytest.approx(1.0)
    assert weights.min() == pytest.approx(0.05)
    assert weights[2] == pytest.approx(0.85, abs=0.01)
    assert np.argmax(weights) == 2
    with pytest.raises(ValueError):
        thompson_weights([0, 1], [1, 1], min_weight=0.6)


def test_beta_posteriors_match_scipy_beta() -> None:
    units, conversions = np.array([0, 10, 400]), np.array([0, 3, 52])
    posteriors = beta_posteriors(units, conversions)
    exact = sps.beta(1 + conversions, 1 + units - conversions)
    assert posteriors.means == pytest.approx(exact.mean())
    assert posteriors.variances == pytest.approx(exact.var())

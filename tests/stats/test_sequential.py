"""Confidence sequences, mixture SPRT and Wald's SPRT."""

from __future__ import annotations

import numpy as np
import pytest

from splitlab.stats import (
    SampleStats,
    msprt_pvalue,
    sequential_test,
    sprt_bernoulli,
    welch_ttest,
)


def _growthbook_style_halfwidth(var_effect: float, n_total: float, alpha: float, tuning: float):
    # Written out as in the Waudby-Smith et al. (2021) asymptotic CS with σ² = N · Var(δ̂).
    rho = np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning)
    s2 = var_effect * n_total
    first = 2 * (n_total * rho**2 + 1) / (n_total**2 * rho**2)
    second = np.log(np.sqrt(n_total * rho**2 + 1) / alpha)
    return np.sqrt(s2) * np.sqrt(first * second)


def test_confidence_sequence_halfwidth(rng: np.random.Generator) -> None:
    a, b = rng.normal(1.0, 1.0, 6000), rng.normal(1.05, 1.2, 4000)
    control, treatment = SampleStats.from_values(a), SampleStats.from_values(b)
    result = sequential_test(control, treatment, alpha=0.05, tuning=5000)
    var = a.var(ddof=1) / 6000 + b.var(ddof=1) / 4000
    half = _growthbook_style_halfwidth(var, 10_000, 0.05, 5000)
    assert float(result.abs_ci_high - result.abs_effect) == pytest.approx(half, rel=1e-9)
    assert float(result.abs_effect - result.abs_ci_low) == pytest.approx(half, rel=1e-9)
    assert half / np.sqrt(var) == pytest.approx(3.0614, abs=1e-3)  # vs 1.96 fixed-horizon
    fixed = welch_ttest(control, treatment)
    assert float(result.rel_ci_high - result.rel_effect) > float(
        fixed.rel_ci_high - fixed.rel_effect
    )
    assert np.isnan(result.df)


def test_pvalue_below_alpha_exactly_when_cs_excludes_zero(rng: np.random.Generator) -> None:
    n = np.full(2000, 3000.0)
    control = SampleStats(n, rng.normal(3000, 80, 2000), np.full(2000, 3000 + 3000.0))
    treatment = SampleStats(n, rng.normal(3000, 80, 2000), np.full(2000, 3000 + 3000.0))
    result = sequential_test(control, treatment, alpha=0.05)
    excludes = (result.abs_ci_low > 0) | (result.abs_ci_high < 0)
    assert excludes.any() and not excludes.all()
    np.testing.assert_array_equal(result.p_value <= 0.05, excludes)


def test_sequential_pvalue_equals_msprt_with_matching_mixture(rng: np.random.Generator) -> None:
    a, b = rng.normal(0, 1, 800), rng.normal(0.15, 1, 900)
    control, treatment = SampleStats.from_values(a), SampleStats.from_values(b)
    seq = sequential_test(control, treatment, alpha=0.05, tuning=5000)
    rho2 = (-2 * np.log(0.05) + np.log(-2 * np.log(0.05) + 1)) / 5000
    var = a.var(ddof=1) / 800 + b.var(ddof=1) / 900
    p, reason = msprt_pvalue(control, treatment, mixture_variance=rho2 * 1700 * var)
    assert float(p) == pytest.approx(float(seq.p_value), rel=1e-9)
    assert reason == ""


def test_msprt_by_hand_and_running_minimum() -> None:
    # cumulative looks along the last axis
    control = SampleStats([100, 200, 300], [0, 0, 0], [100, 200, 300])
    treatment = SampleStats([100, 200, 300], [30, 20, 60], [109, 202, 312])
    p, _ = msprt_pvalue(control, treatment, mixture_variance=0.01)
    tau2 = 0.01
    v = control.variance / control.n + treatment.variance / treatment.n
    delta = treatment.mean
    lam = np.sqrt(v / (v + tau2)) * np.exp(tau2 * delta**2 / (2 * v * (v + tau2)))
    np.testing.assert_allclose(p, np.minimum(1, 1 / lam), rtol=1e-12)
    running, _ = msprt_pvalue(control, treatment, mixture_variance=0.01, axis=-1)
    np.testing.assert_allclose(running, np.minimum.accumulate(np.minimum(1, 1 / lam)))
    assert running[1] <= p[1]


def test_sequential_degenerate() -> None:
    result = sequential_test(SampleStats([1, 10], [1, 5], [1, 5]), SampleStats(10, 5, 5))
    assert list(result.reason) == ["n_below_2", ""]
    assert np.isnan(result.p_value[0]) and np.isfinite(result.p_value[1])


def test_sprt_llr_boundaries_and_decisions() -> None:
    x_b = np.array([0, 10, 25, 50])
    n_b = np.array([0, 100, 200, 300])
    result = sprt_bernoulli(
        [0, 9, 20, 31], [0, 100, 200, 300], x_b, n_b, p0=0.1, p1=0.15, alpha=0.05, beta=0.2
    )
    expected = x_b * np.log(1.5) + (n_b - x_b) * np.log(0.85 / 0.9)
    np.testing.assert_allclose(result.llr, expected, rtol=1e-12)
    assert result.upper == pytest.approx(np.log(0.8 / 0.05))
    assert result.lower == pytest.approx(np.log(0.2 / 0.95))
    assert list(result.decision) == ["continue", "continue", "continue", "reject_h0"]
    assert int(result.stopped_at) == 3 and result.final == "reject_h0"


def test_sprt_accepts_and_vectorises() -> None:
    n = np.arange(0, 2001, 100)
    x_null = np.round(n * 0.1)
    x_alt = np.round(n * 0.16)
    batch = sprt_bernoulli(
        np.stack([x_null, x_null]), n, np.stack([x_null, x_alt]), n, p0=0.1, p1=0.13
    )
    assert list(batch.final) == ["accept_h0", "reject_h0"]
    assert batch.decision.shape == (2, len(n))
    assert np.all(batch.stopped_at > 0)
    with pytest.raises(ValueError):
        sprt_bernoulli(0, 1, 0, 1, p0=0.1, p1=0.1)
    invalid = sprt_bernoulli([5], [2], [1], [2], p0=0.1, p1=0.2)
    assert np.isnan(invalid.llr[0]) and invalid.final == "continue"

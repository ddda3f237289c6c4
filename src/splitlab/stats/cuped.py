"""CUPED: variance reduction by regression adjustment on a pre-experiment covariate."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from splitlab.stats.aggregates import CovariateStats, FloatArray
from splitlab.stats.frequentist import mean_codes, welch_from_arms
from splitlab.stats.results import Alternative, CupedResult, MarginType


def pooled_theta(control: CovariateStats, treatment: CovariateStats) -> FloatArray:
    """θ = cov(x, y) / var(x) on the pooled arms (both arms' sums added); 0 if var(x) = 0.

    Estimating θ on the pooled data (not per arm) keeps the adjusted difference unbiased.
    """
    pooled = control + treatment
    with np.errstate(divide="ignore", invalid="ignore"):
        var_x = pooled.x.variance
        return np.where(var_x > 0, pooled.covariance / var_x, 0.0)


class CupedArms(NamedTuple):
    """Each arm's CUPED-adjusted mean and the variance of that mean (see :func:`cuped_arms`)."""

    control_mean: FloatArray
    treatment_mean: FloatArray
    control_var: FloatArray
    """Var(ȳ_c*) = max(s²_y − 2θ s_xy + θ² s²_x, 0) / n of the control arm."""
    treatment_var: FloatArray
    """Var(ȳ_t*) of the treatment arm."""
    theta: FloatArray
    """θ of :func:`pooled_theta`."""


def cuped_arms(control: CovariateStats, treatment: CovariateStats) -> CupedArms:
    """Each arm's adjusted mean ȳᵢ* = ȳᵢ − θ (x̄ᵢ − x̄) and its variance
    (s²_yᵢ − 2θ s_xyᵢ + θ² s²_xᵢ) / nᵢ (clipped at 0), with θ from :func:`pooled_theta` and x̄
    the pooled covariate mean, both treated as constants.  This is the per-unit variance of
    the adjusted values yᵢ − θ (xᵢ − x̄) over n.  Broadcasts; NaN where n < 2."""
    theta = pooled_theta(control, treatment)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_bar = (control.sum_x + treatment.sum_x) / (control.n + treatment.n)

        def adjusted(arm: CovariateStats) -> tuple[FloatArray, FloatArray]:
            mean = arm.y.mean - theta * (arm.x.mean - x_bar)
            var = arm.y.variance - 2.0 * theta * arm.covariance + theta * theta * arm.x.variance
            return mean, np.maximum(var, 0.0) / arm.n

        m_c, v_c = adjusted(control)
        m_t, v_t = adjusted(treatment)
    return CupedArms(m_c, m_t, v_c, v_t, theta)


def cuped_test(
    control: CovariateStats,
    treatment: CovariateStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    margin: float | FloatArray = 0.0,
    margin_type: MarginType = "absolute",
) -> CupedResult:
    """CUPED / regression-adjusted Welch test (Deng et al. 2013) from sufficient statistics.

    With θ from :func:`pooled_theta` and x̄ the pooled covariate mean, each arm's adjusted mean
    and its variance are

        ȳᵢ* = ȳᵢ − θ (x̄ᵢ − x̄),   Var(ȳᵢ*) = (s²_yᵢ − 2θ s_xyᵢ + θ² s²_xᵢ) / nᵢ,

    treating θ and x̄ as constants (their estimation error is O(1/n)).  The effect, CIs and
    Welch–Satterthwaite t reference then follow :func:`splitlab.stats.welch_ttest` on the
    adjusted quantities, and ``variance_reduction`` = 1 − Var(δ*) / Var(δ) (≈ ρ² for equal arms).
    Reasons: ``n_below_2``, ``zero_variance`` (adjusted variances both 0),
    ``zero_control_mean`` (relative fields only).
    """
    m_c, m_t, v_c, v_t, theta = cuped_arms(control, treatment)
    n_c, n_t = control.n, treatment.n
    with np.errstate(divide="ignore", invalid="ignore"):
        raw_c, raw_t = control.y.variance / n_c, treatment.y.variance / n_t
        codes = mean_codes(m_c, m_t, v_c, v_t, n_c, n_t)
        base = welch_from_arms(
            m_c,
            m_t,
            v_c,
            v_t,
            n_c,
            n_t,
            codes,
            alpha=alpha,
            alternative=alternative,
            margin=margin,
            margin_type=margin_type,
        )
        shape = codes.shape
        bad = codes != 0
        reduction = np.where(bad, np.nan, 1.0 - (v_c + v_t) / (raw_c + raw_t))
        return CupedResult(
            **vars(base),
            theta=np.where(bad, np.nan, np.broadcast_to(theta, shape)),
            variance_reduction=reduction,
        )

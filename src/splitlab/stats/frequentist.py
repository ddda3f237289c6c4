"""Fixed-horizon two-arm tests on means: z-test for proportions and Welch's t-test."""

from __future__ import annotations

import numpy as np

from splitlab.stats._inference import effect_test
from splitlab.stats.aggregates import FloatArray, SampleStats
from splitlab.stats.results import (
    INVALID_COUNTS,
    N_BELOW_2,
    ZERO_VARIANCE,
    Alternative,
    MarginType,
    TestResult,
    reason_codes,
)


def ztest_proportions(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    margin: float | FloatArray = 0.0,
    margin_type: MarginType = "absolute",
) -> TestResult:
    """Two-proportion z-test of a binary metric (successes = ``sum``; ``sum_sq`` is ignored).

    With p̂ᵢ = xᵢ/nᵢ and pooled p̄ = (x_c + x_t)/(n_c + n_t):

        z = (p̂_t − p̂_c) / √(p̄(1 − p̄)(1/n_c + 1/n_t))                   (pooled, as H0 states)
        CI = p̂_t − p̂_c ± z_{1−α/2} √(p̂_c(1−p̂_c)/n_c + p̂_t(1−p̂_t)/n_t)    (unpooled Wald)

    matching statsmodels ``proportions_ztest`` and ``confint_proportions_2indep(method="wald")``.
    The relative CI is the delta-method interval for p̂_t/p̂_c − 1 with the unpooled variances.
    With a non-inferiority ``margin`` the null is no longer p_t = p_c, so the statistic uses
    the unpooled SE.  Reasons: ``n_below_2``, ``invalid_counts`` (x < 0 or x > n),
    ``zero_variance`` (p̄ ∈ {0, 1}), ``zero_control_mean`` (p̂_c = 0; relative fields only).
    """
    n_c, n_t = control.n, treatment.n
    x_c, x_t = control.sum, treatment.sum
    with np.errstate(divide="ignore", invalid="ignore"):
        p_c = x_c / n_c
        p_t = x_t / n_t
        pooled = (x_c + x_t) / (n_c + n_t)
        pooled_var = pooled * (1.0 - pooled)
        shape = np.broadcast_shapes(p_c.shape, p_t.shape)
        codes = reason_codes(
            shape,
            (N_BELOW_2, (n_c < 2) | (n_t < 2)),
            (INVALID_COUNTS, (x_c < 0) | (x_t < 0) | (x_c > n_c) | (x_t > n_t)),
            (ZERO_VARIANCE, ~(pooled_var > 0)),
        )
        statistic_se = np.sqrt(pooled_var * (1.0 / n_c + 1.0 / n_t))
        return effect_test(
            p_c,
            p_t,
            p_c * (1.0 - p_c) / n_c,
            p_t * (1.0 - p_t) / n_t,
            codes,
            alpha=alpha,
            alternative=alternative,
            statistic_se=statistic_se,
            margin=margin,
            margin_type=margin_type,
        )


def welch_df(
    var_mean_c: FloatArray, var_mean_t: FloatArray, n_c: FloatArray, n_t: FloatArray
) -> FloatArray:
    """Welch–Satterthwaite ν = (v_c + v_t)² / (v_c²/(n_c − 1) + v_t²/(n_t − 1)), vᵢ = sᵢ²/nᵢ."""
    with np.errstate(divide="ignore", invalid="ignore"):
        total = var_mean_c + var_mean_t
        return (
            total
            * total
            / (var_mean_c * var_mean_c / (n_c - 1.0) + var_mean_t * var_mean_t / (n_t - 1.0))
        )


def welch_ttest(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    margin: float | FloatArray = 0.0,
    margin_type: MarginType = "absolute",
) -> TestResult:
    """Welch's unequal-variance t-test on the difference of means.

        δ = ȳ_t − ȳ_c,  SE = √(s_c²/n_c + s_t²/n_t),  t = (δ + shift)/SE,
        ν = Welch–Satterthwaite (see :func:`welch_df`),  CI = δ ± t_{1−α/2, ν} SE,

    matching ``scipy.stats.ttest_ind(equal_var=False)`` and statsmodels
    ``ttest_ind(usevar="unequal")``.  The relative CI (ȳ_t/ȳ_c − 1) is the delta-method interval
    with the same t critical value.  Reasons: ``n_below_2``, ``zero_variance`` (both s² = 0),
    ``zero_control_mean`` (relative fields only).
    """
    n_c, n_t = control.n, treatment.n
    with np.errstate(divide="ignore", invalid="ignore"):
        v_c = control.variance / n_c
        v_t = treatment.variance / n_t
        m_c, m_t = control.mean, treatment.mean
        return welch_from_arms(
            m_c,
            m_t,
            v_c,
            v_t,
            n_c,
            n_t,
            mean_codes(m_c, m_t, v_c, v_t, n_c, n_t),
            alpha=alpha,
            alternative=alternative,
            margin=margin,
            margin_type=margin_type,
        )


def mean_codes(
    m_c: FloatArray,
    m_t: FloatArray,
    v_c: FloatArray,
    v_t: FloatArray,
    n_c: FloatArray,
    n_t: FloatArray,
) -> np.ndarray:
    """Reason codes of a comparison of two arms' means ``m`` with variances of those means
    ``v`` and sizes ``n``: ``n_below_2`` (an arm under two units), then ``zero_variance``."""
    return reason_codes(
        np.broadcast_shapes(v_c.shape, v_t.shape, m_c.shape, m_t.shape),
        (N_BELOW_2, (n_c < 2) | (n_t < 2)),
        (ZERO_VARIANCE, ~(v_c + v_t > 0)),
    )


def welch_from_arms(
    m_c: FloatArray,
    m_t: FloatArray,
    v_c: FloatArray,
    v_t: FloatArray,
    n_c: FloatArray,
    n_t: FloatArray,
    codes: np.ndarray,
    *,
    alpha: float,
    alternative: Alternative,
    margin: float | FloatArray,
    margin_type: MarginType,
) -> TestResult:
    """Welch's test from each arm's mean, the variance of that mean and its size (what
    :func:`welch_ttest` and CUPED's adjusted arms share), with the Welch–Satterthwaite df."""
    return effect_test(
        m_c,
        m_t,
        v_c,
        v_t,
        codes,
        alpha=alpha,
        alternative=alternative,
        df=welch_df(v_c, v_t, n_c, n_t),
        margin=margin,
        margin_type=margin_type,
    )

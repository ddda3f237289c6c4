"""Confidence intervals for the relative effect r = m_t / m_c − 1 of two independent arms.

Every two-arm test reports a delta-method relative CI (see :func:`effect_test
<splitlab.stats._inference.effect_test>`).  It is symmetric around r̂ and treats the control
mean as known up to a linearisation; on skewed, heavy-tailed metrics (revenue with many zeros
and a lognormal tail) the control mean is itself skewed, and the delta interval covers less
than its nominal level — too rarely above, too often below the truth.  The validity suite
(``splitlab validate``, ``docs/validity.md``) measures this.  Two alternatives, from the same
arm means and variances of those means (vᵢ = Var(m̂ᵢ)), with critical value c:

* ``fieller`` — Fieller's (1954) interval: the set of ρ = m_t/m_c for which the test of
  H0: m_t − ρ m_c = 0 does not reject, (m̂_t − ρ m̂_c)² ≤ c² (v_t + ρ² v_c).  Solving the
  quadratic (arms independent, so no covariance term):

      ρ = (m̂_t m̂_c ± c √(m̂_t² v_c + m̂_c² v_t − c² v_c v_t)) / (m̂_c² − c² v_c).

  It is bounded only when the control mean is itself significantly non-zero
  (m̂_c² > c² v_c); otherwise the set is unbounded and both bounds are ∓inf.
* ``log`` — the delta method on the log-ratio scale:
  exp(log(m̂_t/m̂_c) ± c √(v_t/m̂_t² + v_c/m̂_c²)) − 1; both means must have the same sign
  (NaN otherwise).  For proportions it is the Katz log interval (statsmodels
  ``confint_proportions_2indep(compare="ratio", method="log")``).
* ``delta`` — r̂ ± c √(v_t + ρ̂² v_c)/|m̂_c|, as the tests report.

All three agree to first order in 1/n and are equally cheap; they differ on skewed data.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

import numpy as np

from splitlab.stats._inference import critical_value
from splitlab.stats.aggregates import ArrayLike, FloatArray, as_float
from splitlab.stats.results import Alternative, check_alternative

RelativeMethod = Literal["delta", "fieller", "log"]
RELATIVE_METHODS: Final[tuple[str, ...]] = get_args(RelativeMethod)


def relative_effect_variance(
    control_mean: ArrayLike,
    treatment_mean: ArrayLike,
    control_var_of_mean: ArrayLike,
    treatment_var_of_mean: ArrayLike,
) -> FloatArray:
    """Delta-method variance of r̂ = m̂_t/m̂_c − 1 for independent arms:
    Var(r̂) ≈ (v_t + ρ̂² v_c) / m̂_c² with ρ̂ = m̂_t/m̂_c and vᵢ = Var(m̂ᵢ).  Broadcasts;
    NaN or ±inf where m̂_c = 0 (no warning)."""
    m_c, m_t = as_float(control_mean), as_float(treatment_mean)
    v_c, v_t = as_float(control_var_of_mean), as_float(treatment_var_of_mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = m_t / m_c
        variance: FloatArray = (v_t + ratio * ratio * v_c) / (m_c * m_c)
    return variance


def relative_interval(
    control_mean: ArrayLike,
    treatment_mean: ArrayLike,
    control_var_of_mean: ArrayLike,
    treatment_var_of_mean: ArrayLike,
    *,
    method: RelativeMethod = "fieller",
    alpha: float = 0.05,
    df: ArrayLike | None = None,
    alternative: Alternative = "two-sided",
) -> tuple[FloatArray, FloatArray]:
    """(low, high) of the (1 − α) CI of r = m_t/m_c − 1 by ``method`` (module docstring).

    Fieller: the ρ − 1 with (m̂_t − ρ m̂_c)² ≤ c² (v_t + ρ² v_c); log: exp(log ρ̂ ± c √(v_t/m̂_t² +
    v_c/m̂_c²)) − 1; delta: r̂ ± c √(v_t + ρ̂² v_c)/|m̂_c|, with ρ̂ = m̂_t/m̂_c.

    ``control_var_of_mean`` and ``treatment_var_of_mean`` are Var(m̂) (s²/n for a plain mean,
    the adjusted or delta-method variance for CUPED and ratio metrics).  The critical value is
    z, or Student t with ``df`` degrees of freedom (the Welch ν of a t-test).  One-sided
    alternatives give the one-sided bound and ±inf, as the tests do.  Broadcasts over arrays;
    invalid input (NaN, negative variance) gives NaN, and an unbounded Fieller set gives
    (−inf, inf).
    """
    check_alternative(alternative)
    if method not in RELATIVE_METHODS:
        raise ValueError(f"method must be one of {', '.join(RELATIVE_METHODS)}, not {method!r}")
    m_c, m_t = as_float(control_mean), as_float(treatment_mean)
    v_c, v_t = as_float(control_var_of_mean), as_float(treatment_var_of_mean)
    crit = critical_value(alpha, None if df is None else as_float(df), alternative)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        valid = (v_c >= 0) & (v_t >= 0) & np.isfinite(m_c) & np.isfinite(m_t)
        invalid = ~valid | (m_c == 0)
        ratio = m_t / m_c
        if method == "delta":
            half = crit * np.sqrt(v_t + ratio * ratio * v_c) / np.abs(m_c)
            low, high = ratio - half, ratio + half
        elif method == "log":
            half = crit * np.sqrt(v_t / (m_t * m_t) + v_c / (m_c * m_c))
            log_ratio = np.log(ratio)
            low, high = np.exp(log_ratio - half), np.exp(log_ratio + half)
            invalid = invalid | ~(ratio > 0)
        else:
            c2 = crit * crit
            a = m_c * m_c - c2 * v_c
            root = np.sqrt(np.maximum(m_t * m_t * v_c + m_c * m_c * v_t - c2 * v_c * v_t, 0.0))
            low = (m_t * m_c - crit * root) / a
            high = (m_t * m_c + crit * root) / a
            unbounded = ~(a > 0)
            low = np.where(unbounded, -np.inf, low)
            high = np.where(unbounded, np.inf, high)
        low = np.where(invalid, np.nan, low - 1.0)
        high = np.where(invalid, np.nan, high - 1.0)
    if alternative == "greater":
        high = np.where(np.isnan(low), np.nan, np.inf)
    elif alternative == "less":
        low = np.where(np.isnan(high), np.nan, -np.inf)
    return low, high

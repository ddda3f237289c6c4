"""Power, sample size, minimum detectable effect and duration, vectorised.

Every calculation reduces to the normal approximation on the standardised effect
s = |δ| / SE(δ̂), where SE² = (σ_c² + σ_t²/r) / n_c for n_t = r·n_c:

    power(s) = Φ(s − z_{1−α/2}) + Φ(−s − z_{1−α/2})     (two-sided)
    power(s) = Φ(±s − z_{1−α})                          (one-sided, sign = direction)

Solving power(s) = 1 − β gives s* (Newton, including the far tail, as statsmodels does), and
n_c = s*² (σ_c² + σ_t²/r) / δ².  With σ_c = σ_t = 1 and δ = Cohen's h or d this is exactly
statsmodels ``NormalIndPower``.  Variances may be CUPED-reduced (× (1 − ρ²), see
``variance_reduction``) or per-unit delta-method variances of a ratio metric
(:attr:`splitlab.stats.RatioStats.variance`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats.aggregates import FloatArray, as_float
from splitlab.stats.results import Alternative, check_alternative

ProportionMethod = Literal["cohen_h", "normal"]
MeansMethod = Literal["normal", "t"]
_INV_SQRT_2PI = 0.3989422804014327


class SampleSize(NamedTuple):
    """Units needed per arm: ``n_control`` = ⌈n_c⌉, ``n_treatment`` = ⌈r·n_c⌉, their sum, and the
    unrounded ``n_control_exact`` (statsmodels' ``nobs1``)."""

    n_control: FloatArray
    n_treatment: FloatArray
    n_total: FloatArray
    n_control_exact: FloatArray


def _ceil(values: FloatArray) -> FloatArray:
    # Guard against 1000.0000000001 → 1001 from floating-point noise.
    return np.ceil(values * (1.0 - 1e-12))


def _crit(alpha: npt.ArrayLike, alternative: Alternative) -> FloatArray:
    a = as_float(alpha)
    return special.ndtri(1.0 - a / 2.0 if alternative == "two-sided" else 1.0 - a)


def power_from_standardized(
    s: npt.ArrayLike, *, alpha: npt.ArrayLike = 0.05, alternative: Alternative = "two-sided"
) -> FloatArray:
    """Power of a z-test whose effect is ``s`` standard errors away from 0 (signed).

    Two-sided Φ(s − c) + Φ(−s − c); ``greater`` Φ(s − c); ``less`` Φ(−s − c); c the critical z.
    """
    check_alternative(alternative)
    s_arr = as_float(s)
    c = _crit(alpha, alternative)
    if alternative == "greater":
        return special.ndtr(s_arr - c)
    if alternative == "less":
        return special.ndtr(-s_arr - c)
    return special.ndtr(s_arr - c) + special.ndtr(-s_arr - c)


def standardized_effect_for_power(
    *,
    alpha: npt.ArrayLike = 0.05,
    power: npt.ArrayLike = 0.8,
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """s* ≥ 0 with power_from_standardized(s*) = power (for ``less``, power at −s*).

    One-sided: s* = z_{1−α} + z_{power}.  Two-sided: start from z_{1−α/2} + z_{power} and take
    Newton steps on Φ(s − c) + Φ(−s − c) = power (the far tail matters only for low power).
    """
    check_alternative(alternative)
    c = _crit(alpha, alternative)
    s = c + special.ndtri(as_float(power))
    if alternative != "two-sided":
        return s
    for _ in range(6):
        value = special.ndtr(s - c) + special.ndtr(-s - c) - power
        slope = _INV_SQRT_2PI * (np.exp(-0.5 * (s - c) ** 2) - np.exp(-0.5 * (s + c) ** 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(slope > 0, s - value / slope, s)
    return s


def _n_for(
    delta: FloatArray,
    variance_sum: FloatArray,
    *,
    alpha: npt.ArrayLike,
    power: npt.ArrayLike,
    alternative: Alternative,
) -> FloatArray:
    """n_c = s*² (σ_c² + σ_t²/r) / δ²; NaN for δ = 0 or a one-sided test pointing the wrong way."""
    s = standardized_effect_for_power(alpha=alpha, power=power, alternative=alternative)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = s * s * variance_sum / (delta * delta)
        wrong_way = (alternative == "greater" and delta <= 0) | (
            alternative == "less" and delta >= 0
        )
        return np.where((delta == 0) | wrong_way, np.nan, n)


def normal_sample_size(
    effect_size: npt.ArrayLike,
    *,
    alpha: npt.ArrayLike = 0.05,
    power: npt.ArrayLike = 0.8,
    ratio: npt.ArrayLike = 1.0,
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """Exact (unrounded) n_c of statsmodels ``NormalIndPower().solve_power`` for a standardised
    effect d (Cohen's d or h): n_c = s*² (1 + 1/r) / d².  NaN for d = 0 or a one-sided test
    whose effect points the wrong way."""
    variance_sum = 1.0 + 1.0 / as_float(ratio)
    return _n_for(
        as_float(effect_size), variance_sum, alpha=alpha, power=power, alternative=alternative
    )


def _sample_size(n_control: FloatArray, ratio: npt.ArrayLike) -> SampleSize:
    n_c = _ceil(n_control)
    n_t = _ceil(n_control * as_float(ratio))
    return SampleSize(n_c, n_t, n_c + n_t, n_control)


def _proportion_terms(
    baseline: npt.ArrayLike,
    mde: npt.ArrayLike,
    relative: bool,
    ratio: npt.ArrayLike,
    method: ProportionMethod,
) -> tuple[FloatArray, FloatArray]:
    """(δ, σ_c² + σ_t²/r) on the scale the method tests; NaN for rates outside (0, 1)."""
    p_c = as_float(baseline)
    mde_arr = as_float(mde)
    p_t = p_c * (1.0 + mde_arr) if relative else p_c + mde_arr
    r = as_float(ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        valid = (p_c > 0) & (p_c < 1) & (p_t > 0) & (p_t < 1)
        if method == "cohen_h":
            delta = 2.0 * np.arcsin(np.sqrt(p_t)) - 2.0 * np.arcsin(np.sqrt(p_c))
            variance_sum = 1.0 + 1.0 / r
        elif method == "normal":
            delta = p_t - p_c
            variance_sum = p_c * (1.0 - p_c) + p_t * (1.0 - p_t) / r
        else:
            raise ValueError(f"unknown method {method!r}")
        return np.where(valid, delta, np.nan), np.broadcast_to(variance_sum, np.shape(delta))


def _means_terms(
    std: npt.ArrayLike, mde: npt.ArrayLike, ratio: npt.ArrayLike, variance_reduction: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    variance = as_float(std) ** 2 * (1.0 - as_float(variance_reduction))
    return as_float(mde), variance * (1.0 + 1.0 / as_float(ratio))


def sample_size_proportions(
    baseline: npt.ArrayLike,
    mde: npt.ArrayLike,
    *,
    relative: bool = False,
    alpha: npt.ArrayLike = 0.05,
    power: npt.ArrayLike = 0.8,
    ratio: npt.ArrayLike = 1.0,
    alternative: Alternative = "two-sided",
    method: ProportionMethod = "cohen_h",
) -> SampleSize:
    """Units per arm to detect a change of a conversion rate from p_c = ``baseline`` to
    p_t = p_c + mde (or p_c (1 + mde) if ``relative``); n_t = r·n_c.

    ``cohen_h`` (default, = statsmodels ``NormalIndPower`` with ``proportion_effectsize``):
    h = 2 asin√p_t − 2 asin√p_c,  n_c = s*² (1 + 1/r) / h².
    ``normal`` (unpooled normal approximation):  n_c = s*² (p_c(1−p_c) + p_t(1−p_t)/r) / δ².
    Rates outside (0, 1) give NaN.
    """
    delta, variance_sum = _proportion_terms(baseline, mde, relative, ratio, method)
    n = _n_for(delta, variance_sum, alpha=alpha, power=power, alternative=alternative)
    return _sample_size(n, ratio)


def _t_power(
    n_c: FloatArray, d: FloatArray, r: FloatArray, alpha: FloatArray, alternative: Alternative
) -> FloatArray:
    df = n_c * (1.0 + r) - 2.0
    nc = d * np.sqrt(n_c * r / (1.0 + r))
    if alternative == "two-sided":
        crit = special.stdtrit(df, 1.0 - alpha / 2.0)
        return 1.0 - special.nctdtr(df, nc, crit) + special.nctdtr(df, nc, -crit)
    crit = special.stdtrit(df, 1.0 - alpha)
    if alternative == "greater":
        return 1.0 - special.nctdtr(df, nc, crit)
    return special.nctdtr(df, nc, -crit)


def sample_size_means(
    std: npt.ArrayLike,
    mde: npt.ArrayLike,
    *,
    alpha: npt.ArrayLike = 0.05,
    power: npt.ArrayLike = 0.8,
    ratio: npt.ArrayLike = 1.0,
    alternative: Alternative = "two-sided",
    variance_reduction: npt.ArrayLike = 0.0,
    method: MeansMethod = "normal",
) -> SampleSize:
    """Units per arm to detect an absolute change ``mde`` in a mean with per-unit SD ``std``.

    Cohen's d = mde / (std √(1 − variance_reduction)) (variance_reduction = ρ² for CUPED; for a
    ratio metric pass √RatioStats.variance as ``std``).
    ``normal`` (default): n_c = s*² (1 + 1/r) / d², = statsmodels ``NormalIndPower``.
    ``t``: solves the noncentral-t power of statsmodels ``TTestIndPower`` (df = n_c(1 + r) − 2,
    noncentrality d √(n_c r/(1 + r))) by secant steps from the normal answer + z²/4.  It is
    about one unit per arm larger than ``normal`` (the t critical value exceeds z) and slower.
    """
    delta, variance_sum = _means_terms(std, mde, ratio, variance_reduction)
    n = _n_for(delta, variance_sum, alpha=alpha, power=power, alternative=alternative)
    if method == "t":
        r, a, target = as_float(ratio), as_float(alpha), as_float(power)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = delta / np.sqrt(variance_sum / (1.0 + 1.0 / r))
            z = _crit(alpha, alternative)
            x0 = n + z * z / 4.0
            x1 = x0 + 1.0
            f0 = _t_power(x0, d, r, a, alternative) - target
            for _ in range(30):
                f1 = _t_power(x1, d, r, a, alternative) - target
                step = np.where(f1 != f0, f1 * (x1 - x0) / (f1 - f0), 0.0)
                x0, f0, x1 = x1, f1, x1 - step
                if np.all(
                    np.abs(step[np.isfinite(step)]) < 1e-10 * np.maximum(x1, 1.0)[np.isfinite(step)]
                ):
                    break
            n = np.where(np.isfinite(n), x1, np.nan)
    elif method != "normal":
        raise ValueError(f"unknown method {method!r}")
    return _sample_size(n, ratio)


def achieved_power(
    mde: npt.ArrayLike,
    n_control: npt.ArrayLike,
    *,
    std: npt.ArrayLike | None = None,
    baseline: npt.ArrayLike | None = None,
    relative: bool = False,
    alpha: npt.ArrayLike = 0.05,
    ratio: npt.ArrayLike = 1.0,
    alternative: Alternative = "two-sided",
    method: ProportionMethod = "cohen_h",
    variance_reduction: npt.ArrayLike = 0.0,
) -> FloatArray:
    """Power to detect ``mde`` with ``n_control`` units in control and r·n_control in treatment.

    Give ``std`` for a mean metric (absolute mde; optional CUPED ``variance_reduction``) or
    ``baseline`` for a conversion rate (mde absolute or ``relative``; ``method`` as in
    :func:`sample_size_proportions`).  Power = power_from_standardized(δ √(n_c / (σ_c² + σ_t²/r))).
    Post-hoc: pass the observed n.  Mid-experiment: pass the planned final n and the variance
    observed so far, to see whether the plan still reaches its power.
    """
    if (std is None) == (baseline is None):
        raise ValueError("give exactly one of std (mean metric) or baseline (conversion rate)")
    if std is not None:
        delta, variance_sum = _means_terms(std, mde, ratio, variance_reduction)
    else:
        assert baseline is not None
        delta, variance_sum = _proportion_terms(baseline, mde, relative, ratio, method)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = delta * np.sqrt(as_float(n_control) / variance_sum)
    return power_from_standardized(s, alpha=alpha, alternative=alternative)


def power_curve(
    mdes: npt.ArrayLike,
    n_control: npt.ArrayLike,
    **options: object,
) -> FloatArray:
    """:func:`achieved_power` over a grid: power[..., j] = achieved_power(mdes[j], n_control[...]).

    Returns an array of shape ``np.shape(n_control) + np.shape(mdes)``; ``options`` are the
    keyword arguments of :func:`achieved_power` (``std`` or ``baseline``, ``alpha``, …).
    """
    grid = as_float(mdes)
    n = as_float(n_control)[(..., *([None] * grid.ndim))]
    return achieved_power(grid, n, **options)  # type: ignore[arg-type]


def mde_for_sample_size(
    n_control: npt.ArrayLike,
    *,
    std: npt.ArrayLike | None = None,
    baseline: npt.ArrayLike | None = None,
    relative: bool = False,
    alpha: npt.ArrayLike = 0.05,
    power: npt.ArrayLike = 0.8,
    ratio: npt.ArrayLike = 1.0,
    alternative: Alternative = "two-sided",
    method: ProportionMethod = "cohen_h",
    variance_reduction: npt.ArrayLike = 0.0,
) -> FloatArray:
    """Smallest effect detectable with the given power: the inverse of the sample-size functions.

    Means: δ = s* σ √((1 − ρ²)(1 + 1/r) / n_c).  Proportions, ``cohen_h``: h = s* √((1 + 1/r)/n_c),
    p_t = sin²(asin√p_c ± h/2); ``normal``: the root of n_c δ² / s*² = p_c(1−p_c) + p_t(1−p_t)/r.
    The MDE is an increase (a decrease for ``less``), absolute, or relative to ``baseline``
    if ``relative``.
    """
    if (std is None) == (baseline is None):
        raise ValueError("give exactly one of std (mean metric) or baseline (conversion rate)")
    n = as_float(n_control)
    r = as_float(ratio)
    s = standardized_effect_for_power(alpha=alpha, power=power, alternative=alternative)
    sign = -1.0 if alternative == "less" else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if std is not None:
            _, variance_sum = _means_terms(std, 0.0, ratio, variance_reduction)
            return sign * s * np.sqrt(variance_sum / n)
        assert baseline is not None
        p_c = as_float(baseline)
        if method == "cohen_h":
            h = s * np.sqrt((1.0 + 1.0 / r) / n)
            angle = np.arcsin(np.sqrt(p_c)) + sign * h / 2.0
            p_t = np.where((angle > 0) & (angle < np.pi / 2), np.sin(angle) ** 2, np.nan)
            delta = p_t - p_c
        elif method == "normal":
            # K δ² = v_c + (p_c + δ)(1 − p_c − δ)/r  ⇔  (K + 1/r) δ² − b δ − v_c (1 + 1/r) = 0
            k = n / (s * s) + 1.0 / r
            b = (1.0 - 2.0 * p_c) / r
            v_c = p_c * (1.0 - p_c)
            delta = (b + sign * np.sqrt(b * b + 4.0 * k * v_c * (1.0 + 1.0 / r))) / (2.0 * k)
        else:
            raise ValueError(f"unknown method {method!r}")
        return delta / p_c if relative else delta


def duration_days(
    n: npt.ArrayLike,
    daily_units: npt.ArrayLike,
    coverage: npt.ArrayLike = 1.0,
    n_variants: npt.ArrayLike = 2,
) -> FloatArray:
    """Days to enrol ``n`` units per variant: days = ⌈n · n_variants / (daily_units · coverage)⌉.

    ``coverage`` is the fraction of eligible daily traffic entering the experiment.  Assumes
    equal allocation and new units each day (returning users make the real duration longer).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        days = as_float(n) * as_float(n_variants) / (as_float(daily_units) * as_float(coverage))
        return np.where(np.isfinite(days), _ceil(days), np.nan)

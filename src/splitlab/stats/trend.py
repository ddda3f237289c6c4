"""Is an effect drifting over time?  A weighted least-squares trend through per-period
estimates with known variances (the novelty / primacy check)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from splitlab.stats.aggregates import ArrayLike, FloatArray, as_float
from splitlab.stats.results import N_BELOW_2, ZERO_VARIANCE, StrArray, reason_array, reason_codes


class TrendResult(NamedTuple):
    """Slope of y on x and its test; arrays of the input's shape without its last axis."""

    slope: FloatArray
    """Change of y per unit of x."""
    standard_error: FloatArray
    """Standard error of the slope, 1/√Sxx (the variances are taken as known)."""
    statistic: FloatArray
    """z = slope / standard_error."""
    p_value: FloatArray
    """Two-sided normal p-value of z."""
    points: FloatArray
    """How many points were used."""
    reason: StrArray
    """``""``, ``n_below_2`` (fewer than two usable points) or ``zero_variance`` (every usable
    point has the same x)."""


def weighted_trend(x: ArrayLike, y: ArrayLike, variance: ArrayLike) -> TrendResult:
    """Weighted least-squares slope of ``y`` on ``x`` along the last axis, with weights
    1/``variance`` (each y's known variance), and its z-test against a zero slope.

    With wᵢ = 1/vᵢ, x̄ = Σwx/Σw, ȳ = Σwy/Σw and Sxx = Σw(x − x̄)², the slope is
    Σw(x − x̄)(y − ȳ)/Sxx with standard error 1/√Sxx (statsmodels
    ``WLS(y, [1, x], weights=w).fit(cov_type="fixed scale")``).  Points whose y or variance
    is not finite, or whose variance is not positive, are left out.  Broadcasts over the
    leading axes, so one call tests every metric × treatment.
    """
    x_, y_, v_ = np.broadcast_arrays(as_float(x), as_float(y), as_float(variance))
    with np.errstate(divide="ignore", invalid="ignore"):
        usable = np.isfinite(x_) & np.isfinite(y_) & np.isfinite(v_) & (v_ > 0)
        w = np.where(usable, 1.0 / np.where(usable, v_, 1.0), 0.0)
        xs, ys = np.where(usable, x_, 0.0), np.where(usable, y_, 0.0)
        total = np.sum(w, axis=-1, keepdims=True)
        x_bar = np.sum(w * xs, axis=-1, keepdims=True) / total
        y_bar = np.sum(w * ys, axis=-1, keepdims=True) / total
        sxx = np.sum(w * (xs - x_bar) ** 2, axis=-1)
        slope = np.sum(w * (xs - x_bar) * (ys - y_bar), axis=-1) / sxx
        standard_error = 1.0 / np.sqrt(sxx)
        points = np.sum(usable, axis=-1).astype(np.float64)
        codes = reason_codes(slope.shape, (N_BELOW_2, points < 2), (ZERO_VARIANCE, ~(sxx > 0)))
        bad = codes != 0
        slope = np.where(bad, np.nan, slope)
        standard_error = np.where(bad, np.nan, standard_error)
        statistic = slope * np.sqrt(sxx)
        p_value = special.erfc(np.abs(statistic) / np.sqrt(2.0))
    return TrendResult(slope, standard_error, statistic, p_value, points, reason_array(codes))

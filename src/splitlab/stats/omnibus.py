"""Omnibus tests across k arms from sufficient statistics: χ² for proportions, one-way ANOVA."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats.aggregates import FloatArray, SampleStats, as_float
from splitlab.stats.results import (
    INVALID_COUNTS,
    N_BELOW_2,
    ZERO_VARIANCE,
    StrArray,
    reason_array,
    reason_codes,
)


class OmnibusResult(NamedTuple):
    """Statistic (χ² or F), p-value, degrees of freedom and reason code per family."""

    statistic: FloatArray
    p_value: FloatArray
    df: FloatArray
    df_denominator: FloatArray
    reason: StrArray


def chi2_omnibus(successes: npt.ArrayLike, n: npt.ArrayLike) -> OmnibusResult:
    """Pearson χ² test of homogeneity of k proportions (a k×2 table), arms on the last axis.

    E_success,i = nᵢ·p̄, E_failure,i = nᵢ(1 − p̄), p̄ = Σx/Σn;
    χ² = Σ over the 2k cells (O − E)²/E, df = k − 1; equals ``scipy.stats.chi2_contingency``
    without continuity correction.  ``df_denominator`` is NaN.  Reasons: ``n_below_2`` (an
    arm with n < 2), ``invalid_counts``, ``zero_variance`` (all successes or all failures).
    """
    x = as_float(successes)
    units = as_float(n)
    x, units = np.broadcast_arrays(x, units)
    k = x.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = np.sum(x, axis=-1, keepdims=True) / np.sum(units, axis=-1, keepdims=True)
        expected_s = units * pooled
        expected_f = units * (1.0 - pooled)
        failures = units - x
        chi2 = np.sum(
            (x - expected_s) ** 2 / expected_s + (failures - expected_f) ** 2 / expected_f,
            axis=-1,
        )
        p_bar = pooled[..., 0]
        codes = reason_codes(
            chi2.shape,
            (N_BELOW_2, np.any(units < 2, axis=-1)),
            (INVALID_COUNTS, np.any((x < 0) | (x > units), axis=-1)),
            (ZERO_VARIANCE, ~(p_bar * (1 - p_bar) > 0)),
        )
        bad = codes != 0
        chi2 = np.where(bad, np.nan, chi2)
        p_value = special.chdtrc(k - 1, chi2)
    return OmnibusResult(
        chi2,
        p_value,
        np.full(chi2.shape, k - 1.0),
        np.full(chi2.shape, np.nan),
        reason_array(codes),
    )


def anova_oneway(stats_list: Sequence[SampleStats]) -> OmnibusResult:
    """Classic one-way ANOVA F-test (equal variances) across the k arms of ``stats_list``.

    With N = Σnᵢ, grand mean ȳ = Σ sumᵢ / N:
        SS_between = Σ nᵢ (ȳᵢ − ȳ)²,   SS_within = Σ (nᵢ − 1) sᵢ²,
        F = (SS_between / (k − 1)) / (SS_within / (N − k)),  p = P(F_{k−1, N−k} > F);
    equals ``scipy.stats.f_oneway`` and statsmodels ``anova_oneway(use_var="equal")``.
    Each element may hold arrays (one family per broadcast index).  Reasons: ``n_below_2``,
    ``zero_variance`` (SS_within = 0).
    """
    k = len(stats_list)
    if k < 2:
        raise ValueError("anova_oneway needs at least two groups")
    n = np.stack(np.broadcast_arrays(*(s.n for s in stats_list)), axis=-1)
    sums = np.stack(np.broadcast_arrays(*(s.sum for s in stats_list)), axis=-1)
    variances = np.stack(np.broadcast_arrays(*(s.variance for s in stats_list)), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        total_n = np.sum(n, axis=-1)
        grand = np.sum(sums, axis=-1) / total_n
        means = sums / n
        ss_between = np.sum(n * (means - grand[..., None]) ** 2, axis=-1)
        ss_within = np.sum((n - 1) * variances, axis=-1)
        df_b = np.full(total_n.shape, k - 1.0)
        df_w = total_n - k
        codes = reason_codes(
            total_n.shape,
            (N_BELOW_2, np.any(n < 2, axis=-1)),
            (ZERO_VARIANCE, ~(ss_within > 0)),
        )
        bad = codes != 0
        f_stat = np.where(bad, np.nan, (ss_between / df_b) / (ss_within / df_w))
        p_value = special.fdtrc(df_b, df_w, f_stat)
    return OmnibusResult(f_stat, p_value, df_b, np.where(bad, np.nan, df_w), reason_array(codes))

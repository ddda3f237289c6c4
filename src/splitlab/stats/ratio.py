"""Ratio metrics (Σnum / Σden per arm, e.g. revenue per session) by the delta method."""

from __future__ import annotations

import numpy as np

from splitlab.stats._inference import effect_test
from splitlab.stats.aggregates import FloatArray, RatioStats
from splitlab.stats.results import (
    N_BELOW_2,
    ZERO_DENOMINATOR,
    ZERO_VARIANCE,
    Alternative,
    MarginType,
    TestResult,
    reason_codes,
)


def ratio_test(
    control: RatioStats,
    treatment: RatioStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    margin: float | FloatArray = 0.0,
    margin_type: MarginType = "absolute",
) -> TestResult:
    """z-test on the difference of two ratio metrics, variances by the delta method.

    Per arm, with μ_n, μ_d the per-unit means, R = μ_n/μ_d and

        Var(R) = (s²_n − 2R s_nd + R² s²_d) / (n μ_d²)       (Deng, Knoblich & Lu 2018),

    δ = R_t − R_c,  SE = √(Var(R_c) + Var(R_t)),  z = (δ + shift)/SE,  CI = δ ± z_{1−α/2} SE;
    relative R_t/R_c − 1 with the delta-method CI.  Units (not events) must be the
    randomisation unit.  ``df`` is NaN (normal reference).  Reasons: ``n_below_2``,
    ``zero_denominator_mean``, ``zero_variance``, ``zero_control_mean`` (relative only).
    """
    n_c, n_t = control.n, treatment.n
    with np.errstate(divide="ignore", invalid="ignore"):
        r_c, r_t = control.mean, treatment.mean
        v_c = control.variance / n_c
        v_t = treatment.variance / n_t
        shape = np.broadcast_shapes(r_c.shape, r_t.shape, v_c.shape, v_t.shape)
        codes = reason_codes(
            shape,
            (N_BELOW_2, (n_c < 2) | (n_t < 2)),
            (ZERO_DENOMINATOR, (control.sum_den == 0) | (treatment.sum_den == 0)),
            (ZERO_VARIANCE, ~(v_c + v_t > 0)),
        )
        return effect_test(
            r_c,
            r_t,
            v_c,
            v_t,
            codes,
            alpha=alpha,
            alternative=alternative,
            margin=margin,
            margin_type=margin_type,
        )

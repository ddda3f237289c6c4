"""Is the effect different across segment cells?  Cochran's Q on the cells' effects (and, for
two cells, the equivalent interaction z-test), from each cell's effect and its variance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from splitlab.stats.aggregates import FloatArray, as_float
from splitlab.stats.results import N_BELOW_2, ZERO_VARIANCE, StrArray, reason_array, reason_codes


@dataclass(frozen=True, eq=False)
class HeterogeneityResult:
    """Per comparison (the cell axis reduced away):

    ``q``: Cochran's Q = Σ wᵢ (θᵢ − θ̄)², wᵢ = 1/vᵢ, θ̄ = Σ wᵢθᵢ / Σ wᵢ (fixed-effect mean);
    ``df`` = k − 1 over the k cells with a finite effect and a positive variance;
    ``p_value`` = P(χ²_df > Q); ``i_squared`` = max(0, (Q − df)/Q) (Higgins & Thompson);
    ``z``: two cells only, the interaction z = (θ₂ − θ₁)/√(v₁ + v₂) (z² = Q, the same p);
    ``pooled`` and ``pooled_var``: θ̄ and 1/Σwᵢ; ``cells``: k; ``reason``: ``n_below_2``
    (fewer than two usable cells) or ``zero_variance`` (Q undefined)."""

    q: FloatArray
    df: FloatArray
    p_value: FloatArray
    i_squared: FloatArray
    z: FloatArray
    pooled: FloatArray
    pooled_var: FloatArray
    cells: FloatArray
    reason: StrArray


def heterogeneity(
    effects: FloatArray, variances: FloatArray, *, axis: int = -1
) -> HeterogeneityResult:
    """Cochran's Q across the cells on ``axis`` (see :class:`HeterogeneityResult`):

        Q = Σ wᵢ (θᵢ − θ̄)²,  wᵢ = 1/vᵢ,  p = P(χ²_{k−1} > Q),

    as
    ``statsmodels.stats.meta_analysis.combine_effects(effects, variances).q``; cells whose
    effect or variance is not finite, or whose variance is not positive, are left out."""
    theta = np.moveaxis(as_float(effects), axis, -1)
    var = np.moveaxis(as_float(variances), axis, -1)
    if theta.shape[-1] < 2:  # one cell (a segment with one value): pad, nothing to compare
        pad = [(0, 0)] * (theta.ndim - 1) + [(0, 2 - theta.shape[-1])]
        theta = np.pad(theta, pad, constant_values=np.nan)
        var = np.pad(var, pad, constant_values=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        usable = np.isfinite(theta) & np.isfinite(var) & (var > 0)
        weight = np.where(usable, 1.0 / np.where(usable, var, 1.0), 0.0)
        theta0 = np.where(usable, theta, 0.0)
        total = weight.sum(axis=-1)
        pooled = (weight * theta0).sum(axis=-1) / total
        q = (weight * (theta0 - pooled[..., None]) ** 2).sum(axis=-1)
        k = usable.sum(axis=-1).astype(np.float64)
        df = k - 1.0
        codes = reason_codes(q.shape, (N_BELOW_2, k < 2), (ZERO_VARIANCE, ~(total > 0)))
        bad = codes != 0
        p_value = special.chdtrc(df, q)
        i_squared = np.where(q > 0, np.maximum(0.0, (q - df) / q), 0.0)
        # two cells: the interaction z of the second usable cell against the first
        order = np.argsort(~usable, axis=-1, kind="stable")[..., :2]
        first = np.take_along_axis(theta, order[..., :1], axis=-1)[..., 0]
        second = np.take_along_axis(theta, order[..., 1:2], axis=-1)[..., 0]
        v1 = np.take_along_axis(var, order[..., :1], axis=-1)[..., 0]
        v2 = np.take_along_axis(var, order[..., 1:2], axis=-1)[..., 0]
        z = np.where(k == 2, (second - first) / np.sqrt(v1 + v2), np.nan)

        def blank(values: FloatArray) -> FloatArray:
            return np.where(bad, np.nan, values)

        return HeterogeneityResult(
            q=blank(q),
            df=blank(df),
            p_value=blank(p_value),
            i_squared=blank(i_squared),
            z=blank(z),
            pooled=blank(pooled),
            pooled_var=blank(1.0 / total),
            cells=k,
            reason=reason_array(codes),
        )

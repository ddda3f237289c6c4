"""Event-level quantiles ("p95 of all requests") with the clustered delta-method standard error
(Deng, Knoblich & Lu 2018, "Applying the delta method in metric analytics", §4).

A unit contributes Nᵢ events, so events are not independent and the order-statistic bracket of
:func:`~splitlab.stats.quantile_ranks` (Binomial(ΣN, q)) is too narrow when units are
heterogeneous.  With q̂ the pooled q-quantile of an arm's events and Iᵢ the number of unit i's
events at or below q̂, F̂ = ΣI / ΣN is a ratio of unit-level sums, whose variance the delta
method gives from per-unit sufficient statistics:

    σ²_F = (s²_I − 2 F̂ s_IN + F̂² s²_N) / (n μ_N²),   μ_N = ΣN / n,

(sample variances and covariance over the n units).  The quantiles at q ∓ z σ_F bracket q̂ as
the order statistics do in the i.i.d. case, so :class:`~splitlab.stats.QuantileStats` built
on that bracket gives SE(q̂) = (X_U − X_L) / (2z) and :func:`~splitlab.stats.quantile_test`
applies unchanged.

What the warehouse computes per arm: q̂ (``quantile_cont`` over events), then per unit Iᵢ
and Nᵢ summed as n, ΣI, ΣI², ΣN, ΣN², ΣIN, then the quantiles at the bracket.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats.aggregates import FloatArray, as_float, centred_sum_of_products
from splitlab.stats.quantile import QuantileStats


def clustered_quantile_ranks(
    q: npt.ArrayLike,
    n: npt.ArrayLike,
    sum_i: npt.ArrayLike,
    sum_i_sq: npt.ArrayLike,
    sum_n: npt.ArrayLike,
    sum_n_sq: npt.ArrayLike,
    sum_in: npt.ArrayLike,
    alpha: float = 0.05,
) -> tuple[FloatArray, FloatArray]:
    """(p_low, p_high) = q ∓ z_{1−α/2} σ_F (clipped to [0, 1]), σ_F the clustered
    delta-method SE of F̂ = ΣI/ΣN over ``n`` units (see the module docstring)."""
    q_arr = as_float(q)
    units, si, sn = as_float(n), as_float(sum_i), as_float(sum_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = si / sn
        var_i = centred_sum_of_products(units, si, si, as_float(sum_i_sq)) / (units - 1)
        var_n = centred_sum_of_products(units, sn, sn, as_float(sum_n_sq)) / (units - 1)
        cov = centred_sum_of_products(units, si, sn, as_float(sum_in)) / (units - 1)
        mean_n = sn / units
        var_f = np.maximum(var_i - 2 * f * cov + f * f * var_n, 0.0) / (units * mean_n * mean_n)
        half = special.ndtri(1.0 - alpha / 2.0) * np.sqrt(var_f)
    return np.clip(q_arr - half, 0.0, 1.0), np.clip(q_arr + half, 0.0, 1.0)


def event_quantile_stats(
    values: list[FloatArray], q: float, *, rank_alpha: float = 0.05, clustered: bool = True
) -> QuantileStats:
    """One arm's :class:`QuantileStats` of the event-level q-quantile from each unit's event
    values (``values[i]``), as the warehouse would compute it (linear interpolation): the
    bracket is clustered (:func:`clustered_quantile_ranks`) or, with ``clustered=False``, the
    naive i.i.d. one over all events (:func:`~splitlab.stats.quantile_ranks`) — for tests,
    examples and the A/A simulation that compares them."""
    from splitlab.stats.quantile import quantile_ranks

    events = np.concatenate([as_float(v) for v in values])
    estimate = float(np.quantile(events, q))
    counts = np.array([len(v) for v in values], dtype=float)
    if clustered:
        below = np.array([float(np.sum(as_float(v) <= estimate)) for v in values])
        p_low, p_high = clustered_quantile_ranks(
            q,
            counts.size,
            below.sum(),
            (below * below).sum(),
            counts.sum(),
            (counts * counts).sum(),
            (below * counts).sum(),
            rank_alpha,
        )
    else:
        p_low, p_high = quantile_ranks(events.size, q, rank_alpha)
    low, high = np.quantile(events, [float(p_low), float(p_high)])
    return QuantileStats(
        as_float(events.size), as_float(estimate), as_float(low), as_float(high), rank_alpha
    )

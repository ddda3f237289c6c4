"""Difference of quantiles (p50, p90, p99, …) between arms from warehouse aggregates.

The standard error of a sample quantile comes from the binomial–normal approximation of the
order statistics (Deng, Knoblich & Lu 2018, "Applying the delta method in metric analytics"):
the number of values below the true q-quantile is Binomial(n, q), so the order statistics at
ranks n·q ± z·√(n q (1 − q)) bracket it with probability ≈ 1 − α, and

    SE(q̂) ≈ (X₍U₎ − X₍L₎) / (2 z).

What the warehouse must compute per arm (one query, ``quantile_cont`` in SQL):

1. ``n`` — number of values (one per randomisation unit, so values are independent);
2. ``quantile_cont(value, q)`` — the estimate;
3. ``quantile_cont(value, p_low)`` and ``quantile_cont(value, p_high)`` where
   ``(p_low, p_high) = quantile_ranks(n, q, alpha)`` — a first query gets n, or use an
   upper bound on n in the ranks (a wider bracket only widens the CI slightly).

If values are events clustered within units (several per user), this SE is too small:
aggregate to one value per unit first or use a clustered method.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats._inference import effect_test
from splitlab.stats.aggregates import FloatArray, as_float
from splitlab.stats.results import (
    EMPTY_INTERVAL,
    N_BELOW_2,
    Alternative,
    MarginType,
    TestResult,
    reason_codes,
)


def quantile_ranks(
    n: npt.ArrayLike, q: npt.ArrayLike, alpha: float = 0.05
) -> tuple[FloatArray, FloatArray]:
    """Probabilities at which the warehouse should evaluate ``quantile_cont`` to bracket the
    q-quantile: (p_low, p_high) = q ∓ z_{1−α/2} √(q (1 − q) / n), clipped to [0, 1]."""
    q_arr = as_float(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = special.ndtri(1.0 - alpha / 2.0) * np.sqrt(q_arr * (1.0 - q_arr) / as_float(n))
    return np.clip(q_arr - half, 0.0, 1.0), np.clip(q_arr + half, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class QuantileStats:
    """Per-arm quantile aggregates: ``n``, the ``estimate`` of the q-quantile, and the values
    ``lower``/``upper`` at the probabilities :func:`quantile_ranks` returned for ``rank_alpha``.

    ``standard_error`` = (upper − lower) / (2 z_{1−rank_alpha/2}).
    """

    n: FloatArray
    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    rank_alpha: float = 0.05

    def __post_init__(self) -> None:
        for field in fields(self)[:4]:
            object.__setattr__(self, field.name, as_float(getattr(self, field.name)))

    @property
    def standard_error(self) -> FloatArray:
        """SE(q̂) ≈ (X₍U₎ − X₍L₎) / (2 z)."""
        z = float(special.ndtri(1.0 - self.rank_alpha / 2.0))
        return (self.upper - self.lower) / (2.0 * z)

    @classmethod
    def from_values(
        cls, values: npt.ArrayLike, q: float, *, rank_alpha: float = 0.05, axis: int = -1
    ) -> Self:
        """Compute the aggregates from raw values as the warehouse would (linear interpolation,
        i.e. ``quantile_cont``), along ``axis``."""
        data = np.moveaxis(as_float(values), axis, -1)
        n = data.shape[-1]
        p_low, p_high = quantile_ranks(n, q, rank_alpha)
        found = np.quantile(data, [float(q), float(p_low), float(p_high)], axis=-1)
        return cls(np.full(found.shape[1:], float(n)), found[0], found[1], found[2], rank_alpha)


def quantile_test(
    control: QuantileStats,
    treatment: QuantileStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    margin: float | FloatArray = 0.0,
    margin_type: MarginType = "absolute",
) -> TestResult:
    """z-test on the difference of a quantile between independent arms.

    δ = q̂_t − q̂_c,  SE = √(SE_c² + SE_t²) with SEᵢ from the order-statistic bracket,
    CI = δ ± z_{1−α/2} SE;  relative q̂_t/q̂_c − 1 with the delta-method CI.  ``df`` is NaN.
    Reasons: ``n_below_2``, ``empty_order_statistic_interval`` (upper = lower in both arms,
    e.g. heavily tied values, where the bracket cannot measure the spread),
    ``zero_control_mean`` (control quantile 0; relative fields only).
    """
    se_c, se_t = control.standard_error, treatment.standard_error
    shape = np.broadcast_shapes(se_c.shape, se_t.shape, control.estimate.shape)
    codes = reason_codes(
        shape,
        (N_BELOW_2, (control.n < 2) | (treatment.n < 2)),
        (EMPTY_INTERVAL, ~(se_c * se_c + se_t * se_t > 0)),
    )
    return effect_test(
        control.estimate,
        treatment.estimate,
        se_c * se_c,
        se_t * se_t,
        codes,
        alpha=alpha,
        alternative=alternative,
        margin=margin,
        margin_type=margin_type,
    )

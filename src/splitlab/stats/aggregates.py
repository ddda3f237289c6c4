"""Sufficient statistics: the only input the statistical functions ever see.

Every class is a frozen dataclass of float64 numpy arrays (0-d for scalars) that broadcast
against each other, so one instance can hold thousands of metric × variant × segment × day
cells.  Sums merge with ``+`` (strata, days).  ``from_values`` builds them from raw values;
it exists for tests and examples: production aggregates come from the warehouse.

Variances are sample variances (ddof = 1):  s² = (Σy² − (Σy)²/n) / (n − 1).  Values within
floating-point rounding of zero (|s²| ≤ 1e-12 · Σy²/(n − 1)) are reported as exactly 0 so that
"zero variance" is detected for constant data instead of leaking a rounding residue.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

_ROUNDING = 1e-12


def as_float(value: ArrayLike) -> FloatArray:
    """Return ``value`` as a float64 array (0-d for scalars), without copying if possible."""
    return np.asarray(value, dtype=np.float64)


def centred_sum_of_products(
    n: FloatArray, sum_a: FloatArray, sum_b: FloatArray, sum_ab: FloatArray
) -> FloatArray:
    """Σ(a − ā)(b − b̄) = Σab − Σa·Σb / n, snapped to 0 when within rounding of 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = sum_ab - sum_a * sum_b / n
        return np.where(np.abs(value) <= _ROUNDING * np.abs(sum_ab), 0.0, value)


def sample_variance(n: FloatArray, total: FloatArray, total_sq: FloatArray) -> FloatArray:
    """s² = (Σy² − (Σy)²/n) / (n − 1); NaN when n < 2."""
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = centred_sum_of_products(n, total, total, total_sq)
        return np.where(n >= 2, np.maximum(centred, 0.0) / (n - 1), np.nan)


def _coerce(instance: Any) -> None:
    for field in fields(instance):
        object.__setattr__(instance, field.name, as_float(getattr(instance, field.name)))


def _merge(left: Any, right: Any) -> Any:
    if type(left) is not type(right):
        return NotImplemented
    return type(left)(*(getattr(left, f.name) + getattr(right, f.name) for f in fields(left)))


@dataclass(frozen=True, eq=False)
class SampleStats:
    """Per-unit metric values of one arm: ``n`` units, ``sum`` = Σy, ``sum_sq`` = Σy².

    For a binary (conversion) metric y ∈ {0, 1}, so ``sum_sq == sum`` = successes.
    ``mean`` = Σy/n; ``variance`` = sample variance with ddof = 1.
    """

    n: FloatArray
    sum: FloatArray
    sum_sq: FloatArray

    def __post_init__(self) -> None:
        _coerce(self)

    def __add__(self, other: SampleStats) -> SampleStats:
        return _merge(self, other)

    @property
    def mean(self) -> FloatArray:
        """ȳ = Σy / n (NaN when n = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.sum / self.n

    @property
    def variance(self) -> FloatArray:
        """s² = (Σy² − (Σy)²/n) / (n − 1) (NaN when n < 2)."""
        return sample_variance(self.n, self.sum, self.sum_sq)

    @classmethod
    def from_values(cls, values: ArrayLike, axis: int = -1) -> Self:
        """Aggregate raw per-unit values along ``axis``."""
        y = as_float(values)
        total = np.sum(y, axis=axis)
        return cls(
            np.full(total.shape, y.shape[axis], dtype=np.float64),
            total,
            np.sum(y * y, axis=axis),
        )


@dataclass(frozen=True, eq=False)
class CovariateStats:
    """Metric ``y`` with a pre-experiment covariate ``x`` (CUPED) for one arm.

    Fields are n, Σy, Σy², Σx, Σx², Σxy.  ``covariance`` = (Σxy − ΣxΣy/n)/(n − 1).
    """

    n: FloatArray
    sum_y: FloatArray
    sum_y_sq: FloatArray
    sum_x: FloatArray
    sum_x_sq: FloatArray
    sum_xy: FloatArray

    def __post_init__(self) -> None:
        _coerce(self)

    def __add__(self, other: CovariateStats) -> CovariateStats:
        return _merge(self, other)

    @property
    def y(self) -> SampleStats:
        """The metric alone, as :class:`SampleStats`."""
        return SampleStats(self.n, self.sum_y, self.sum_y_sq)

    @property
    def x(self) -> SampleStats:
        """The covariate alone, as :class:`SampleStats`."""
        return SampleStats(self.n, self.sum_x, self.sum_x_sq)

    @property
    def covariance(self) -> FloatArray:
        """Sample covariance of x and y, ddof = 1."""
        with np.errstate(divide="ignore", invalid="ignore"):
            centred = centred_sum_of_products(self.n, self.sum_x, self.sum_y, self.sum_xy)
            return np.where(self.n >= 2, centred / (self.n - 1), np.nan)

    @property
    def correlation(self) -> FloatArray:
        """Pearson ρ = cov(x, y) / (s_x s_y) (NaN if either variance is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.covariance / np.sqrt(self.x.variance * self.y.variance)

    @classmethod
    def from_values(cls, y: ArrayLike, x: ArrayLike, axis: int = -1) -> Self:
        """Aggregate paired raw values (metric ``y``, covariate ``x``) along ``axis``."""
        ya, xa = np.broadcast_arrays(as_float(y), as_float(x))
        total = np.sum(ya, axis=axis)
        return cls(
            np.full(total.shape, ya.shape[axis], dtype=np.float64),
            total,
            np.sum(ya * ya, axis=axis),
            np.sum(xa, axis=axis),
            np.sum(xa * xa, axis=axis),
            np.sum(xa * ya, axis=axis),
        )


@dataclass(frozen=True, eq=False)
class RatioStats:
    """Ratio metric Σnum / Σden over ``n`` randomisation units of one arm.

    Fields are n, Σnum, Σnum², Σden, Σden², Σnum·den (sums of per-unit totals).
    The estimate is R = Σnum / Σden = μ̂_num / μ̂_den; by the delta method

        Var(R) ≈ (s²_num / μ_d² − 2 μ_n s_nd / μ_d³ + μ_n² s²_den / μ_d⁴) / n.
    """

    n: FloatArray
    sum_num: FloatArray
    sum_num_sq: FloatArray
    sum_den: FloatArray
    sum_den_sq: FloatArray
    sum_num_den: FloatArray

    def __post_init__(self) -> None:
        _coerce(self)

    def __add__(self, other: RatioStats) -> RatioStats:
        return _merge(self, other)

    @property
    def numerator(self) -> SampleStats:
        """Per-unit numerator as :class:`SampleStats`."""
        return SampleStats(self.n, self.sum_num, self.sum_num_sq)

    @property
    def denominator(self) -> SampleStats:
        """Per-unit denominator as :class:`SampleStats`."""
        return SampleStats(self.n, self.sum_den, self.sum_den_sq)

    @property
    def covariance(self) -> FloatArray:
        """Sample covariance of numerator and denominator, ddof = 1."""
        with np.errstate(divide="ignore", invalid="ignore"):
            centred = centred_sum_of_products(self.n, self.sum_num, self.sum_den, self.sum_num_den)
            return np.where(self.n >= 2, centred / (self.n - 1), np.nan)

    @property
    def mean(self) -> FloatArray:
        """R = Σnum / Σden (NaN when Σden = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.sum_den != 0, self.sum_num / self.sum_den, np.nan)

    @property
    def variance(self) -> FloatArray:
        """Per-unit delta-method variance n·Var(R), usable wherever a unit variance is needed
        (power, sample size): s²_num/μ_d² − 2 μ_n s_nd/μ_d³ + μ_n² s²_den/μ_d⁴."""
        with np.errstate(divide="ignore", invalid="ignore"):
            mu_n = self.sum_num / self.n
            mu_d = self.sum_den / self.n
            ratio = mu_n / mu_d
            value = (
                self.numerator.variance
                - 2.0 * ratio * self.covariance
                + ratio * ratio * self.denominator.variance
            ) / (mu_d * mu_d)
            return np.where(mu_d != 0, np.maximum(value, 0.0), np.nan)

    @classmethod
    def from_values(cls, numerator: ArrayLike, denominator: ArrayLike, axis: int = -1) -> Self:
        """Aggregate per-unit numerator and denominator totals along ``axis``."""
        num, den = np.broadcast_arrays(as_float(numerator), as_float(denominator))
        total = np.sum(num, axis=axis)
        return cls(
            np.full(total.shape, num.shape[axis], dtype=np.float64),
            total,
            np.sum(num * num, axis=axis),
            np.sum(den, axis=axis),
            np.sum(den * den, axis=axis),
            np.sum(num * den, axis=axis),
        )

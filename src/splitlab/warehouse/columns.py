"""Names of the per-unit and aggregate columns the analysis queries produce — one place, so
the query builders (``queries``) and their readers (``analysis``) cannot drift apart.

Metric ``i`` (its position in the plan) owns a set of columns: per unit (one row per unit,
inside the engine) its value, covariate and event counts; summed per variant × day ×
segment its sufficient statistics; and, computed in Python from the quantile query, its
quantile estimate and order-statistic bracket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

UNITS: Final = "n"
"""Aggregate column: units per variant × day × segment."""


@dataclass(frozen=True)
class MetricColumns:
    """Column names of the metric at position ``index`` of the plan."""

    index: int

    # per unit (``queries.metric_values``)
    @property
    def value(self) -> str:
        """The unit's metric value y (0/1 for binary metrics, capped)."""
        return f"y{self.index}"

    @property
    def covariate(self) -> str:
        """The unit's second value x: CUPED pre-period covariate or ratio denominator."""
        return f"x{self.index}"

    @property
    def quantile_value(self) -> str:
        """Quantile metrics: the unit's mean event value (NULL without events)."""
        return f"q{self.index}"

    @property
    def events(self) -> str:
        """Matching events (per unit; summed, per cell)."""
        return f"e{self.index}"

    @property
    def nulls(self) -> str:
        """Matching events without a value (per unit; summed, per cell)."""
        return f"nv{self.index}"

    @property
    def immature(self) -> str:
        """1 when the unit's window is still open (per unit; summed: immature units)."""
        return f"imm{self.index}"

    # summed over units (``queries.sufficient_statistics``)
    @property
    def sum(self) -> str:
        """Σy."""
        return f"sy{self.index}"

    @property
    def sum_sq(self) -> str:
        """Σy²."""
        return f"syy{self.index}"

    @property
    def sum_x(self) -> str:
        """Σx."""
        return f"sx{self.index}"

    @property
    def sum_x_sq(self) -> str:
        """Σx²."""
        return f"sxx{self.index}"

    @property
    def sum_xy(self) -> str:
        """Σxy."""
        return f"sxy{self.index}"

    @property
    def quantile_n(self) -> str:
        """Quantile metrics: units with a value."""
        return f"nq{self.index}"

    # from the quantile query (``analysis.aggregates``)
    @property
    def quantile_estimate(self) -> str:
        """Quantile metrics: the quantile."""
        return f"qest{self.index}"

    @property
    def quantile_low(self) -> str:
        """Quantile metrics: the lower order statistic of the bracket."""
        return f"qlo{self.index}"

    @property
    def quantile_high(self) -> str:
        """Quantile metrics: the upper order statistic of the bracket."""
        return f"qhi{self.index}"

    @property
    def sums(self) -> tuple[str, str]:
        """(Σy, Σy²): a :class:`splitlab.stats.SampleStats` after n."""
        return self.sum, self.sum_sq

    @property
    def covariate_sums(self) -> tuple[str, str, str, str, str]:
        """(Σy, Σy², Σx, Σx², Σxy): a ``CovariateStats`` or ``RatioStats`` after n."""
        return self.sum, self.sum_sq, self.sum_x, self.sum_x_sq, self.sum_xy

    @property
    def quantile_bracket(self) -> tuple[str, str, str, str]:
        """(units with a value, estimate, low, high): a ``QuantileStats`` without its α."""
        return self.quantile_n, self.quantile_estimate, self.quantile_low, self.quantile_high


def metric_columns(index: int) -> MetricColumns:
    """The column names of the metric at position ``index`` of the plan."""
    return MetricColumns(index)


def segment_column(index: int) -> str:
    """Per unit: the code of segment ``index``'s value (its position among the kept values)."""
    return f"seg{index}"


def attribute_column(index: int) -> str:
    """Per unit: the text of segment ``index``'s exposure attribute."""
    return f"attr{index}"


# named covariates (``plan.covariates``): per unit, then summed with their cross-products
def numeric_attribute_column(index: int) -> str:
    """Per unit: covariate ``index``'s exposure attribute as a number (NULL if not one)."""
    return f"num{index}"


def covariate_column(index: int) -> str:
    """Per unit: the value of covariate ``index`` (0 when missing, capped by its own rule)."""
    return f"c{index}"


def covariate_sum(index: int) -> str:
    """Σc over units, of covariate ``index``."""
    return f"sc{index}"


def covariate_cross(first: int, second: int) -> str:
    """Σ cᵢ·cⱼ of two covariates (either order names the same column)."""
    low, high = sorted((first, second))
    return f"scc{low}_{high}"


def outcome_covariate_cross(metric: int, covariate: int) -> str:
    """Σ y·c: metric ``metric``'s value times covariate ``covariate``."""
    return f"syc{metric}_{covariate}"


def pre_period_covariate_cross(metric: int, covariate: int) -> str:
    """Σ x·c: metric ``metric``'s own CUPED pre-period value times covariate ``covariate``."""
    return f"sxc{metric}_{covariate}"

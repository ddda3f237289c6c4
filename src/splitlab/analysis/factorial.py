"""Factorial experiments: from a 2^k experiment's per-variant aggregates to its main effects,
interactions and ANOVA table (``analyze_factorial``), each effect with its CI.

The design comes from the variants' ``payload.factors`` (``splitlab.domain.factorial``; the
control sets every factor low).  The per-variant n, Σy and Σy² are the ones the analysis
itself fetches (``fetch_aggregates``, overall cell, no segments, covariates or daily
series), so the cell means agree with the results table's raw means.  Metrics that are a
per-unit mean (binary, count, sum) are decomposed; ratio and quantile metrics are listed with
a reason.  The effects are not CUPED- or covariate-adjusted, and their p-values are not
corrected across terms or metrics (the table reports each term's own test, as anova_lm).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from splitlab.analysis.aggregates import fetch_aggregates
from splitlab.analysis.plan import AnalysisPlan, build_plan
from splitlab.domain import ExperimentSpec, MetricDefinition, MetricKind
from splitlab.domain.factorial import (
    FactorialDesign,
    NotFactorialError,
    factorial_design,
    is_factorial,
)
from splitlab.errors import ValidationError
from splitlab.stats import SampleStats
from splitlab.stats.factorial import factorial_anova
from splitlab.store.experiments import get_experiment, metric_definitions, spec_from_row
from splitlab.warehouse.columns import metric_columns

if TYPE_CHECKING:
    from splitlab.services import Services

UNIT_MEAN_KINDS = (MetricKind.BINARY, MetricKind.COUNT, MetricKind.SUM)
NOT_A_UNIT_MEAN = "not_a_unit_mean"
"""Reason of a ratio or quantile metric: its value is not a mean of per-unit values."""
TERM_JOIN = " × "


def finite(value: Any) -> float | None:
    """A JSON-safe float: NaN and ±inf become None."""
    number = float(value)
    return number if math.isfinite(number) else None


class ResultModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_Result = TypeVar("_Result")


def not_a_unit_mean(model: Callable[..., _Result], definition: MetricDefinition) -> _Result:
    """The result entry (``model``: a metric result with ``metric``, ``kind``, ``reason`` and
    ``cell_means``) of a metric that is not a per-unit mean, so cannot be decomposed."""
    return model(
        metric=definition.key, kind=definition.kind.value, reason=NOT_A_UNIT_MEAN, cell_means={}
    )


class FactorOut(ResultModel):
    """A factor: its name, its low (control's) and high level."""

    name: str
    low: str
    high: str


class CellOut(ResultModel):
    """One variant of the design: the level it sets for each factor and its units."""

    variant: str
    levels: dict[str, str]
    n: int


class EffectRow(ResultModel):
    """One row of the ANOVA table: a main effect (``order`` 1) or an interaction."""

    term: str
    """The factor names joined by " × " (e.g. ``layout × price``)."""
    factors: tuple[str, ...]
    order: int
    effect: float | None
    """Mean at high − mean at low (an interaction: half the difference of the lower-order
    effect between the high and the low level of the last factor)."""
    coefficient: float | None
    """effect / 2: the OLS coefficient under ±1 (sum-to-zero) coding."""
    se: float | None
    """Standard error of ``effect``."""
    ci_low: float | None
    ci_high: float | None
    t: float | None
    p_value: float | None
    df: float | None
    sum_sq: float | None
    """Type III sum of squares (one degree of freedom)."""
    f: float | None


class MetricFactorial(ResultModel):
    """One metric's decomposition (``reason`` non-empty, and no effects, when not possible)."""

    metric: str
    kind: str
    reason: str
    cell_means: dict[str, float | None]
    effects: tuple[EffectRow, ...] = ()
    residual_sum_sq: float | None = None
    residual_df: float | None = None
    mean_sq_error: float | None = None


class FactorialResult(ResultModel):
    """The factorial analysis of one experiment (JSON: ``GET .../factorial``)."""

    experiment: str
    alpha: float
    anova: str
    """How the table compares with statsmodels: ``typ=3`` with sum-to-zero coding."""
    factors: tuple[FactorOut, ...]
    cells: tuple[CellOut, ...]
    metrics: tuple[MetricFactorial, ...]
    as_of: datetime


def design_of(spec: ExperimentSpec) -> FactorialDesign:
    """The 2^k design of ``spec``; a 422 naming each problem when it is not factorial."""
    payloads = [v.payload for v in spec.variants]
    if not is_factorial(payloads):
        raise ValidationError(
            f"experiment {spec.key!r} is not factorial: no variant sets payload.factors",
            details=[{"loc": ["variants"], "msg": "no variant sets payload.factors"}],
        )
    try:
        return factorial_design([(v.key, v.payload, v.is_control) for v in spec.variants])
    except NotFactorialError as exc:
        raise ValidationError(
            f"experiment {spec.key!r} is not a full 2^k factorial design: {exc}",
            details=[{"loc": loc, "msg": msg} for loc, msg in exc.problems],
        ) from exc


def read_experiment(
    *, services: Services, key: str
) -> tuple[ExperimentSpec, dict[str, MetricDefinition]]:
    """An experiment's spec and its metrics' definitions (404 when there is none)."""
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        return spec_from_row(row), metric_definitions(session=session, row=row)


def overall_plan(
    spec: ExperimentSpec, definitions: dict[str, MetricDefinition], *, services: Services
) -> AnalysisPlan:
    """The experiment's analysis plan for the overall effects only: no segments, crossed
    segments, covariates or daily series (422 when it cannot be analysed)."""
    plan = build_plan(spec, definitions, top_n=services.settings.analysis_top_segments)
    return dataclasses.replace(plan, segments=(), crossed=(), covariates=(), daily=False)


def load_factorial(*, services: Services, key: str) -> tuple[AnalysisPlan, FactorialDesign]:
    """The experiment's analysis plan (overall only) and its design (404 / 422)."""
    spec, definitions = read_experiment(services=services, key=key)
    design = design_of(spec)
    return overall_plan(spec, definitions, services=services), design


def factorial_from_aggregates(
    plan: AnalysisPlan,
    design: FactorialDesign,
    columns: dict[str, np.ndarray],
    *,
    as_of: datetime,
) -> FactorialResult:
    """The factorial result from per-variant sums (``columns``: aggregate column name →
    array over ``plan.variants``; ``n`` and per metric ``sy{i}``, ``syy{i}``)."""
    order = list(plan.variants)
    signs = np.array([design.signs[v] for v in order], dtype=float)
    n = np.asarray(columns["n"], dtype=float)
    names = [f.name for f in design.factors]
    metrics: list[MetricFactorial] = []
    for i, planned in enumerate(plan.metrics):
        definition = planned.definition
        if definition.kind not in UNIT_MEAN_KINDS:
            metrics.append(not_a_unit_mean(MetricFactorial, definition))
            continue
        cols = metric_columns(i)
        cells = SampleStats(n, columns[cols.sum], columns[cols.sum_sq])
        anova = factorial_anova(cells, signs, alpha=plan.alpha)
        e = anova.effects
        rows = tuple(
            EffectRow(
                term=TERM_JOIN.join(names[j] for j in term),
                factors=tuple(names[j] for j in term),
                order=len(term),
                effect=finite(e.estimate[t]),
                coefficient=finite(e.estimate[t] / 2),
                se=finite(e.se[t]),
                ci_low=finite(e.ci_low[t]),
                ci_high=finite(e.ci_high[t]),
                t=finite(e.statistic[t]),
                p_value=finite(e.p_value[t]),
                df=finite(e.df[t]),
                sum_sq=finite(e.sum_sq[t]),
                f=finite(e.f[t]),
            )
            for t, term in enumerate(anova.terms)
        )
        metrics.append(
            MetricFactorial(
                metric=definition.key,
                kind=definition.kind.value,
                reason=str(e.reason[0]),
                cell_means={v: finite(cells.mean[c]) for c, v in enumerate(order)},
                effects=rows,
                residual_sum_sq=finite(anova.residual.sum_sq),
                residual_df=finite(anova.residual.df),
                mean_sq_error=finite(anova.residual.mean_sq),
            )
        )
    return FactorialResult(
        experiment=plan.key,
        alpha=plan.alpha,
        anova="statsmodels anova_lm typ=3, sum-to-zero (±1) coding; classical OLS SEs",
        factors=tuple(FactorOut(name=f.name, low=f.low, high=f.high) for f in design.factors),
        cells=tuple(
            CellOut(variant=v, levels=design.levels(v), n=int(n[c])) for c, v in enumerate(order)
        ),
        metrics=tuple(metrics),
        as_of=as_of,
    )


def analyze_factorial(*, services: Services, key: str) -> FactorialResult:
    """Main effects and interactions of factorial experiment ``key``, computed now from the
    warehouse (404 unknown experiment, 422 not a full 2^k design)."""
    plan, design = load_factorial(services=services, key=key)
    warehouse = services.warehouse
    as_of = warehouse.watermark().last_ingested_at or datetime.now(UTC)
    aggregates = fetch_aggregates(
        warehouse.ibis_connection(),
        exposures=warehouse.exposures_table(),
        events=warehouse.events_table(),
        conflicts=warehouse.conflicts_table(),
        plan=plan,
        as_of=as_of,
        unit_values=warehouse.unit_values_table(),
    )
    overall = aggregates.indices("overall")[0]
    columns = {name: values[overall] for name, values in aggregates.columns.items()}
    return factorial_from_aggregates(plan, design, columns, as_of=as_of)

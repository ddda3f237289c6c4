"""Interactions between concurrent experiments that share units: does experiment A's effect
differ by the arm of experiment B the unit was also in?

The units both experiments analyse (no multiple exposure in either) are summed per (arm of A,
arm of B) in one warehouse pass (``warehouse.overlap``), with A's metrics computed as A's
analysis computes them (windows from the exposure to A, capping).  For each of A's
treatments and each of B's arms, A's effect within that arm; for each of B's treatments the
interaction (A's effect there minus A's effect in B's control, an OLS interaction
coefficient, classical SE); per metric, the omnibus F for "no interaction at all".
Metrics that are not a per-unit mean (ratio, quantile) are listed with a reason.  The
effects are unadjusted (no CUPED or covariates) and their p-values uncorrected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from splitlab.analysis.factorial import (
    UNIT_MEAN_KINDS,
    ResultModel,
    finite,
    not_a_unit_mean,
    overall_plan,
    read_experiment,
)
from splitlab.analysis.plan import AnalysisPlan
from splitlab.errors import ValidationError
from splitlab.stats import SampleStats
from splitlab.stats.factorial import ContrastResult, arm_interactions
from splitlab.warehouse import overlap, queries
from splitlab.warehouse.columns import UNITS, metric_columns
from splitlab.warehouse.scratch import ScratchTables

if TYPE_CHECKING:
    from splitlab.services import Services


class Estimate(ResultModel):
    """One contrast of cell means with its CI and classical t test."""

    estimate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    t: float | None
    p_value: float | None
    df: float | None


class WithinArm(Estimate):
    """A's ``variant`` against A's control among the units in B's arm ``other_variant``."""

    variant: str
    other_variant: str


class Interaction(Estimate):
    """A's effect of ``variant`` in B's ``other_variant`` minus in B's control."""

    variant: str
    other_variant: str


class MetricInteractions(ResultModel):
    metric: str
    kind: str
    reason: str
    cell_means: dict[str, dict[str, float | None]]
    """A's arm → B's arm → mean."""
    within: tuple[WithinArm, ...] = ()
    interactions: tuple[Interaction, ...] = ()
    f: float | None = None
    """Omnibus F for "no interaction" (``anova_lm(typ=3)``'s interaction row)."""
    f_df: tuple[int, float | None] | None = None
    f_p_value: float | None = None


class InteractionsResult(ResultModel):
    """The interaction analysis of experiment ``experiment`` with ``other``."""

    experiment: str
    other: str
    alpha: float
    variants: tuple[str, ...]
    other_variants: tuple[str, ...]
    cells: dict[str, dict[str, int]]
    """A's arm → B's arm → shared units."""
    units: int
    """A's analysed units."""
    shared: int
    """Of those, units B analyses too (the population of the test)."""
    metrics: tuple[MetricInteractions, ...]
    as_of: datetime


def _plan(services: Services, key: str) -> AnalysisPlan:
    spec, definitions = read_experiment(services=services, key=key)
    return overall_plan(spec, definitions, services=services)


def _estimate(result: ContrastResult, index: tuple[int, ...]) -> dict[str, float | None]:
    return {
        "estimate": finite(result.estimate[index]),
        "se": finite(result.se[index]),
        "ci_low": finite(result.ci_low[index]),
        "ci_high": finite(result.ci_high[index]),
        "t": finite(result.statistic[index]),
        "p_value": finite(result.p_value[index]),
        "df": finite(result.df[index]),
    }


def interactions_from_cells(
    plan: AnalysisPlan,
    other: AnalysisPlan,
    columns: dict[str, np.ndarray],
    *,
    units: int,
    as_of: datetime,
) -> InteractionsResult:
    """The result from per-cell sums (``columns``: name → array (A arms, B arms))."""
    a_names, b_names = list(plan.variants), list(other.variants)
    n = np.asarray(columns[UNITS], dtype=float)
    metrics: list[MetricInteractions] = []
    for i, planned in enumerate(plan.metrics):
        definition = planned.definition
        if definition.kind not in UNIT_MEAN_KINDS:
            metrics.append(not_a_unit_mean(MetricInteractions, definition))
            continue
        names = metric_columns(i)
        cells = SampleStats(n, columns[names.sum], columns[names.sum_sq])
        result = arm_interactions(cells, alpha=plan.alpha)
        means = cells.mean
        metrics.append(
            MetricInteractions(
                metric=definition.key,
                kind=definition.kind.value,
                reason=str(result.interaction.reason.flat[0]),
                cell_means={
                    a: {b: finite(means[x, y]) for y, b in enumerate(b_names)}
                    for x, a in enumerate(a_names)
                },
                within=tuple(
                    WithinArm(
                        variant=a_names[t + 1],
                        other_variant=b_names[j],
                        **_estimate(result.within, (t, j)),
                    )
                    for t in range(len(a_names) - 1)
                    for j in range(len(b_names))
                ),
                interactions=tuple(
                    Interaction(
                        variant=a_names[t + 1],
                        other_variant=b_names[j + 1],
                        **_estimate(result.interaction, (t, j)),
                    )
                    for t in range(len(a_names) - 1)
                    for j in range(len(b_names) - 1)
                ),
                f=finite(result.f),
                f_df=(result.f_df[0], finite(result.f_df[1])),
                f_p_value=finite(result.f_p_value),
            )
        )
    return InteractionsResult(
        experiment=plan.key,
        other=other.key,
        alpha=plan.alpha,
        variants=tuple(a_names),
        other_variants=tuple(b_names),
        cells={a: {b: int(n[x, y]) for y, b in enumerate(b_names)} for x, a in enumerate(a_names)},
        units=units,
        shared=int(n.sum()),
        metrics=tuple(metrics),
        as_of=as_of,
    )


def analyze_interactions(*, services: Services, key: str, other: str) -> InteractionsResult:
    """Whether experiment ``key``'s effects differ by the arm of experiment ``other`` (404
    for an unknown experiment; 422 for the experiment itself, or without shared units)."""
    if other == key:
        raise ValidationError(
            "an experiment's interaction with itself is not defined: pass another experiment",
            details=[{"loc": ["query", "with"], "msg": "must differ from the experiment"}],
        )
    plan, other_plan = _plan(services, key), _plan(services, other)
    warehouse = services.warehouse
    as_of = warehouse.watermark().last_ingested_at or datetime.now(UTC)
    con = warehouse.ibis_connection()
    exposures, events = warehouse.exposures_table(), warehouse.events_table()
    conflicts = warehouse.conflicts_table()
    definitions = plan.definitions
    with ScratchTables(con) as scratch:
        units = scratch.store(
            "shared",
            overlap.shared_units(
                exposures,
                conflicts,
                experiment_key=plan.key,
                variants=plan.variants,
                other_key=other_plan.key,
                other_variants=other_plan.variants,
            ),
        )
        per_unit = queries.unit_aggregates(
            units, events, definitions, unit_values=warehouse.unit_values_table()
        )
        stored = scratch.store("values", per_unit.table)
        sums = con.to_pyarrow(
            overlap.cell_sums(per_unit._replace(table=stored), definitions, as_of=as_of)
        )
        counts = con.to_pyarrow(
            overlap.arm_counts(
                exposures, conflicts, experiment_key=plan.key, variants=plan.variants
            )
        )
    a, b = len(plan.variants), len(other_plan.variants)
    rows = {name: sums.column(name).to_numpy(zero_copy_only=False) for name in sums.column_names}
    arm_a = np.asarray(rows.pop("variant"), dtype=np.int64)
    arm_b = np.asarray(rows.pop("other"), dtype=np.int64)
    known = (arm_a < a) & (arm_b < b)
    columns: dict[str, np.ndarray] = {}
    for name, data in rows.items():
        out = np.zeros((a, b))
        values = np.nan_to_num(np.asarray(data, dtype=float))
        np.add.at(out, (arm_a[known], arm_b[known]), values[known])
        columns[name] = out
    if UNITS not in columns or columns[UNITS].sum() == 0:
        raise ValidationError(
            f"experiments {key!r} and {other!r} share no analysed units: "
            "an interaction needs units exposed to both",
            details=[{"loc": ["query", "with"], "msg": "no shared units"}],
        )
    total = int(sum(int(v) for v in counts.column("n").to_pylist()))
    return interactions_from_cells(plan, other_plan, columns, units=total, as_of=as_of)

"""Two experiments that share units: per-unit join of their exposures, summed per
(arm of A, arm of B) — the cells of an interaction test.

One pass in the engine: A's analysed units (``queries.experiment_units``: no multiple
exposure in A) inner-joined on ``unit_id`` to B's analysed units (no multiple exposure in B)
carry B's arm code through ``queries.unit_aggregates`` / ``queries.metric_values`` (A's metric
windows, from each unit's exposure to A), then ``n``, Σy and Σy² per metric are summed per
``variant × other``.  Only these sums leave the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from splitlab.domain import MetricDefinition, MetricKind
from splitlab.warehouse import queries
from splitlab.warehouse.columns import UNITS, metric_columns

OTHER_ARM = "other"
"""Column of B's arm code (position in B's variants; their count for an unknown variant)."""


def _arm_code(value: ir.StringValue, labels: Sequence[str]) -> ir.IntegerValue:
    cases = [(value == label, k) for k, label in enumerate(labels)]
    return ibis.cases(*cases, else_=len(labels)).cast("int16")


def other_arms(
    exposures: ir.Table, conflicts: ir.Table, *, experiment_key: str, variants: Sequence[str]
) -> ir.Table:
    """``unit_id, other``: B's units without a multiple exposure in B, with their arm code."""
    mine = exposures.filter(exposures.experiment_key == experiment_key)
    bad = conflicts.filter(conflicts.experiment_key == experiment_key).select("unit_id")
    kept = mine.anti_join(bad, "unit_id")
    return kept.select(
        other_unit=kept.unit_id, **{OTHER_ARM: _arm_code(kept.variant_key, variants)}
    )


def shared_units(
    exposures: ir.Table,
    conflicts: ir.Table,
    *,
    experiment_key: str,
    variants: Sequence[str],
    other_key: str,
    other_variants: Sequence[str],
) -> ir.Table:
    """A's analysed units that B also analyses: ``experiment_units`` columns plus ``other``."""
    units = queries.experiment_units(
        exposures, conflicts, experiment_key=experiment_key, variants=variants
    )
    arms = other_arms(exposures, conflicts, experiment_key=other_key, variants=other_variants)
    joined = units.inner_join(arms, units.unit_id == arms.other_unit)
    return joined.select(*units.columns, OTHER_ARM)


def cell_sums(
    per_unit: queries.UnitAggregates, metrics: Sequence[MetricDefinition], *, as_of: datetime
) -> ir.Table:
    """``variant, other, n`` and per metric ``sy{i}``, ``syy{i}`` (capped per-unit values, as
    the analysis computes them; none for a quantile metric) over the per-unit aggregates of
    :func:`shared_units`."""
    values = queries.metric_values(per_unit, metrics, as_of=as_of)
    aggs: dict[str, ir.Scalar] = {UNITS: values.uid.count()}
    for i, metric in enumerate(metrics):
        if metric.kind is MetricKind.QUANTILE:  # no per-unit value to sum
            continue
        names = metric_columns(i)
        y = values[names.value]
        aggs[names.sum] = y.sum()
        aggs[names.sum_sq] = (y * y).sum()
    return values.group_by(variant=values.variant, other=values[OTHER_ARM]).agg(**aggs)


def arm_counts(
    exposures: ir.Table, conflicts: ir.Table, *, experiment_key: str, variants: Sequence[str]
) -> ir.Table:
    """``variant, n``: A's analysed units per arm (shared with B or not)."""
    units = queries.experiment_units(
        exposures, conflicts, experiment_key=experiment_key, variants=variants, numbered=False
    )
    return units.group_by("variant").agg(n=units.unit_id.count())

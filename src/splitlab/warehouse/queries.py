"""Metric query builder: metric definitions → Ibis expressions that return only aggregates.

Pure expression builders: they take the warehouse's Ibis tables (``exposures``, ``events``,
``exposure_conflicts``) and plain :class:`~splitlab.domain.MetricDefinition` objects and return
Ibis expressions; executing them on DuckDB or PostgreSQL yields small tables of sufficient
statistics.  Per-unit values are built inside the engine and never leave it.

Definitions (the same on every engine):

* **Units** — rows of ``exposures`` for the experiment (one per unit, its first exposure),
  minus units in ``exposure_conflicts`` (exposed to a second variant), which are counted by
  :func:`excluded_units` instead.
* **Window** — an event counts for a unit when
  ``exposed_at + start ≤ occurred_at < exposed_at + start + length`` (no upper bound when the
  metric has no ``window_hours``).  CUPED covariates use the same metric over the pre-period
  ``exposed_at − cuped_days ≤ occurred_at < exposed_at``.
* **Per-unit value** ``y`` — binary: 1 if any matching event, else 0; count: matching events;
  sum: Σ value; ratio: Σ value (numerator) with ``x`` = number of ``denominator_event``
  events (denominator); quantile: the unit's mean event value (units without one are left
  out, so values are independent across units).  An event's value is its ``value`` or, with
  ``value_field``, that numeric property.  Units without events get 0 (quantile: no value).
* **Capping** — ``y`` (and the CUPED ``x``) is capped at ``min(y, cap)``; a percentile cap is
  the ``quantile_cont`` of ``y`` over all units of the experiment, computed in the same query.
* **Day** — ``floor(epoch(exposed_at) / 86400)``: the UTC day of the unit's first exposure.
  Daily cumulative statistics at day d are the sums over units first exposed on or before d
  (cohort-cumulative; see :func:`sufficient_statistics`).
* **Segments** — exposure attributes; per segment the ``top_n`` most frequent values keep
  their name and the rest become ``"other"``; a missing attribute is ``"(none)"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from splitlab.domain import MetricDefinition, MetricKind

OTHER = "other"
MISSING = "(none)"
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class QuantileGroup:
    """One cell whose quantile aggregates are wanted: a variant, optionally within one
    segment value (``segment_index`` into the segment list), at three probabilities."""

    variant: str
    segment_index: int | None
    segment_value: str | None
    probabilities: tuple[float, float, float]


def _seconds(hours: float) -> ir.IntervalScalar:
    return ibis.interval(seconds=round(hours * 3600))


def segment_column(index: int) -> str:
    return f"seg{index}"


def experiment_units(
    exposures: ir.Table,
    conflicts: ir.Table,
    *,
    experiment_key: str,
    segments: Sequence[str] = (),
    top_n: int = 10,
) -> ir.Table:
    """Analysed units: ``unit_id, variant, exposed_at, day, seg0 … segK`` (labels, top-N)."""
    mine = exposures.filter(exposures.experiment_key == experiment_key)
    bad = conflicts.filter(conflicts.experiment_key == experiment_key).select("unit_id")
    units = mine.anti_join(bad, "unit_id")
    day = (units.exposed_at.epoch_seconds() / SECONDS_PER_DAY).floor().cast("int64")
    columns: dict[str, Any] = {
        "unit_id": units.unit_id,
        "variant": units.variant_key,
        "exposed_at": units.exposed_at,
        "day": day,
    }
    for index, name in enumerate(segments):
        attribute = units.attributes[name]
        raw = ibis.coalesce(attribute.str, attribute.cast("string"), ibis.literal(MISSING))
        columns[f"raw{index}"] = raw
    table = units.select(**columns)
    for index in range(len(segments)):
        raw = table[f"raw{index}"]
        counted = table.mutate(_units=table.unit_id.count().over(group_by=raw))
        rank = ibis.dense_rank().over(order_by=[counted._units.desc(), counted[f"raw{index}"]])
        label = ibis.ifelse(rank < top_n, counted[f"raw{index}"], ibis.literal(OTHER))
        table = counted.mutate(**{segment_column(index): label}).drop(f"raw{index}", "_units")
    return table


def excluded_units(exposures: ir.Table, conflicts: ir.Table, *, experiment_key: str) -> ir.Table:
    """Units excluded for multiple exposure, per first variant: ``variant, excluded``."""
    mine = exposures.filter(exposures.experiment_key == experiment_key)
    bad = conflicts.filter(conflicts.experiment_key == experiment_key).select("unit_id")
    flagged = mine.semi_join(bad, "unit_id")
    return flagged.group_by(variant=flagged.variant_key).agg(excluded=flagged.unit_id.count())


def _filter_condition(properties: ir.JSONValue, spec: dict[str, Any]) -> ir.BooleanValue:
    """Equality (or membership, for a list) on JSON properties, typed by the given value."""
    condition: ir.BooleanValue = ibis.literal(True)
    for key, wanted in spec.items():
        field = properties[key]
        options = wanted if isinstance(wanted, list) else [wanted]
        if not options:
            return ibis.literal(False)
        sample = options[0]
        if isinstance(sample, bool):
            test = field.unwrap_as("boolean").isin(options)
        elif isinstance(sample, int | float):
            test = field.unwrap_as("float64").isin([float(v) for v in options])
        elif sample is None:
            test = field.isnull()
        else:
            test = field.str.isin([str(v) for v in options])
        condition = condition & test.fill_null(False)
    return condition


def _value(events: ir.Table, metric: MetricDefinition) -> ir.FloatingValue:
    if metric.value_field:
        return events.properties[metric.value_field].unwrap_as("float64")
    return events.value


def _in_window(joined: ir.Table, metric: MetricDefinition) -> ir.BooleanValue:
    start = joined.exposed_at + _seconds(metric.window_start_hours)
    condition = joined.occurred_at >= start
    if metric.window_hours is not None:
        end = joined.exposed_at + _seconds(metric.window_start_hours + metric.window_hours)
        condition = condition & (joined.occurred_at < end)
    return condition


def _pre_period(joined: ir.Table, metric: MetricDefinition) -> ir.BooleanValue:
    begin = joined.exposed_at - _seconds(metric.cuped_days * 24.0)
    return (joined.occurred_at >= begin) & (joined.occurred_at < joined.exposed_at)


def uses_cuped(metric: MetricDefinition) -> bool:
    """CUPED applies to binary, count and sum metrics with a pre-period."""
    return metric.cuped_days > 0 and metric.kind in (
        MetricKind.BINARY,
        MetricKind.COUNT,
        MetricKind.SUM,
    )


def has_x(metric: MetricDefinition) -> bool:
    """Whether the metric carries a second per-unit column (CUPED covariate or denominator)."""
    return metric.kind is MetricKind.RATIO or uses_cuped(metric)


def _per_unit_aggregates(
    joined: ir.Table, metrics: Sequence[tuple[int, MetricDefinition]]
) -> dict[str, ir.Scalar]:
    aggs: dict[str, ir.Scalar] = {}
    for i, metric in metrics:
        match = (joined.event_name == metric.event) & _filter_condition(
            joined.properties, metric.filter
        )
        window = match & _in_window(joined, metric)
        value = _value(joined, metric)
        aggs[f"e{i}"] = joined.event_name.count(where=window)
        aggs[f"nv{i}"] = joined.event_name.count(where=window & value.isnull())
        kind = metric.kind
        if kind is MetricKind.BINARY or kind is MetricKind.COUNT:
            aggs[f"y{i}"] = joined.event_name.count(where=window).cast("float64")
        elif kind is MetricKind.QUANTILE:
            aggs[f"q{i}"] = value.mean(where=window)
        else:
            aggs[f"y{i}"] = value.sum(where=window)
        if kind is MetricKind.RATIO:
            assert metric.denominator_event is not None
            den = (joined.event_name == metric.denominator_event) & _in_window(joined, metric)
            aggs[f"x{i}"] = joined.event_name.count(where=den).cast("float64")
        elif uses_cuped(metric):
            pre = match & _pre_period(joined, metric)
            if kind is MetricKind.SUM:
                aggs[f"x{i}"] = value.sum(where=pre)
            else:
                aggs[f"x{i}"] = joined.event_name.count(where=pre).cast("float64")
    return aggs


def unit_values(
    units: ir.Table,
    events: ir.Table,
    metrics: Sequence[MetricDefinition],
    *,
    as_of: datetime,
    only: Sequence[int] | None = None,
) -> ir.Table:
    """Per-unit metric columns next to each unit's variant, day and segments (in the engine).

    Columns per metric index i: ``y{i}`` (value), ``x{i}`` (CUPED covariate or ratio
    denominator), ``q{i}`` (quantile metrics: per-unit mean value, NULL without events),
    ``e{i}`` matching events, ``nv{i}`` matching events without a value, ``imm{i}`` 1 when the
    unit's window is still open at ``as_of``.  ``only`` restricts to some metric indices.
    """
    chosen = [(i, m) for i, m in enumerate(metrics) if only is None or i in only]
    names = sorted(
        {m.event for _, m in chosen}
        | {m.denominator_event for _, m in chosen if m.denominator_event}
    )
    relevant = events.filter(events.event_name.isin(names))
    earliest = max((m.cuped_days for _, m in chosen if uses_cuped(m)), default=0)
    anchors = units.select("unit_id", "exposed_at")
    joined = relevant.join(anchors, "unit_id")
    joined = joined.filter(joined.occurred_at >= joined.exposed_at - _seconds(earliest * 24.0))
    per_unit = joined.group_by("unit_id").agg(**_per_unit_aggregates(joined, chosen))
    table = units.left_join(per_unit, units.unit_id == per_unit.unit_id)
    columns: dict[str, Any] = {name: table[name] for name in units.columns}
    for i, metric in chosen:
        columns[f"e{i}"] = table[f"e{i}"].fill_null(0)
        columns[f"nv{i}"] = table[f"nv{i}"].fill_null(0)
        if metric.kind is MetricKind.QUANTILE:
            columns[f"q{i}"] = table[f"q{i}"]
        else:
            y = table[f"y{i}"].fill_null(0.0)
            columns[f"y{i}"] = ibis.least(y, 1.0) if metric.kind is MetricKind.BINARY else y
        if has_x(metric):
            x = table[f"x{i}"].fill_null(0.0)
            columns[f"x{i}"] = ibis.least(x, 1.0) if metric.kind is MetricKind.BINARY else x
        if metric.window_hours is not None:
            end = table.exposed_at + _seconds(metric.window_start_hours + metric.window_hours)
            columns[f"imm{i}"] = ibis.ifelse(end > ibis.literal(as_of), 1, 0).cast("int64")
        else:
            columns[f"imm{i}"] = ibis.literal(0, type="int64")
    values = table.select(**columns)
    return _capped(values, chosen)


def _capped(values: ir.Table, metrics: Sequence[tuple[int, MetricDefinition]]) -> ir.Table:
    caps: dict[str, Any] = {}
    for i, metric in metrics:
        capping = metric.capping
        if capping is None or metric.kind in (MetricKind.BINARY, MetricKind.QUANTILE):
            continue
        if capping.type == "absolute":
            cap: Any = ibis.literal(float(capping.value))
        else:
            cap = values[f"y{i}"].quantile(capping.value).as_scalar()
        caps[f"y{i}"] = ibis.least(values[f"y{i}"], cap)
        if uses_cuped(metric):
            caps[f"x{i}"] = ibis.least(values[f"x{i}"], cap)
    return values.mutate(**caps) if caps else values


def _sums(values: ir.Table, metrics: Sequence[MetricDefinition]) -> dict[str, ir.Scalar]:
    aggs: dict[str, ir.Scalar] = {"n": values.unit_id.count()}
    for i, metric in enumerate(metrics):
        aggs[f"e{i}"] = values[f"e{i}"].sum()
        aggs[f"nv{i}"] = values[f"nv{i}"].sum()
        aggs[f"imm{i}"] = values[f"imm{i}"].sum()
        if metric.kind is MetricKind.QUANTILE:
            aggs[f"nq{i}"] = values[f"q{i}"].count()
            continue
        y = values[f"y{i}"]
        aggs[f"sy{i}"] = y.sum()
        aggs[f"syy{i}"] = (y * y).sum()
        if has_x(metric):
            x = values[f"x{i}"]
            aggs[f"sx{i}"] = x.sum()
            aggs[f"sxx{i}"] = (x * x).sum()
            aggs[f"sxy{i}"] = (x * y).sum()
    return aggs


def sufficient_statistics(
    values: ir.Table, metrics: Sequence[MetricDefinition], *, n_segments: int
) -> ir.Table:
    """Sums per ``variant × day × (segment, value)`` for every metric at once.

    With segments, one block of rows per segment (``segment`` = its index, ``value`` = label),
    unioned; without, one block with ``segment`` = -1 and ``value`` NULL.  Each block covers
    every unit once, so overall figures are the sums over any one block, per-segment figures
    are its rows, and daily cumulative figures are running sums over ``day`` (the additive
    sums make the daily increments cheap; cumulation happens on the tiny result).
    """
    aggs = _sums(values, metrics)
    blocks = []
    for index in range(max(n_segments, 1)):
        label = values[segment_column(index)] if n_segments else ibis.null().cast("string")
        block = values.group_by(
            variant=values.variant,
            day=values.day,
            segment=ibis.literal(index if n_segments else -1),
            value=label,
        ).agg(**aggs)
        blocks.append(block)
    return ibis.union(*blocks) if len(blocks) > 1 else blocks[0]


def quantile_aggregates(
    values: ir.Table, *, metric_index: int, groups: Sequence[QuantileGroup]
) -> ir.Table:
    """One row: for each group ``g{k}`` the array ``quantile_cont(q{i}, [q, p_low, p_high])``
    over the group's units (``quantile_cont``/``percentile_cont``: linear interpolation)."""
    column = values[f"q{metric_index}"]
    aggs: dict[str, ir.Scalar] = {}
    for k, group in enumerate(groups):
        where = values.variant == group.variant
        if group.segment_index is not None:
            where = where & (values[segment_column(group.segment_index)] == group.segment_value)
        aggs[f"g{k}"] = column.quantile(list(group.probabilities), where=where & column.notnull())
    return values.aggregate(**aggs)

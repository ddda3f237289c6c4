"""Days since exposure: a metric measured one whole day at a time, counted from each unit's
first exposure — the sums behind the novelty view.

Pure expression builders over the analysed units (``queries.experiment_units``, usually the
analysis's stored table, with ``uid``) and the ``events`` table; executing them yields small
tables of sums per variant × day, never rows per unit.

Definitions (the same on every engine):

* **Day k** of a unit — events with ``exposed + k·day ≤ occurred_at < exposed + (k + 1)·day``
  (``day`` = 24 h, ``exposed`` = the unit's first exposure, or its first trigger when the
  analysis is triggered).  Day k is *complete* when ``exposed + (k + 1)·day ≤ as_of``; only
  complete days count, and only k < ``days``.  The caller passes as ``as_of`` the analysis
  time, or the newest matching event when that is earlier (:func:`newest_event`): after data
  stopped arriving (an imported history), a day without events is not a day of no activity.
* **Per-unit value on day k** ``y`` — the metric's event and filter as in
  :mod:`~splitlab.warehouse.queries`: binary 1 if any matching event, else 0; count: matching
  events; sum: Σ value (or the ``value_field`` property).  Each day is its own window: the
  metric's attribution window and capping do not apply.  A unit without matching events on a
  complete day has y = 0, so the sums need only (unit, day) pairs with events, and the units
  per day come from :func:`complete_days`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ibis
import ibis.expr.types as ir

from splitlab.domain import MetricDefinition, MetricKind
from splitlab.warehouse.queries import (
    _NO_LIMIT,
    MICROS_PER_DAY,
    _backend_name,
    _code,
    _filter_condition,
    _value,
    micros,
)

KINDS = (MetricKind.BINARY, MetricKind.COUNT, MetricKind.SUM)
"""Metric kinds measured by day since exposure (per-unit sums, so additive per day)."""


def sum_column(j: int) -> str:
    """Σy of metric ``j`` (its position in the ``metrics`` given) in :func:`day_sums`."""
    return f"s{j}"


def sum_sq_column(j: int) -> str:
    """Σy² of metric ``j`` in :func:`day_sums`."""
    return f"ss{j}"


def _whole_days(microseconds: ir.IntegerValue) -> ir.IntegerValue:
    return (microseconds / MICROS_PER_DAY).floor().cast("int64")


def complete_days(units: ir.Table, *, as_of_us: int, days: int) -> ir.Table:
    """Units per ``variant × complete``: ``complete`` = how many whole days since the unit's
    exposure have passed by ``as_of_us`` (microseconds since the epoch), clipped to
    ``[0, days]``; rows ``variant, complete, units``.  Units with day k complete are those
    with ``complete > k`` (a running sum over the tiny result)."""
    elapsed = _whole_days(ibis.literal(as_of_us, type="int64") - units.exposed_us)
    complete = ibis.least(ibis.greatest(elapsed, 0), days)
    return units.group_by(variant=units.variant, complete=complete).agg(units=units.count())


def newest_event(events: ir.Table, metrics: Sequence[MetricDefinition]) -> ir.Scalar:
    """When the newest event of the metrics' event names occurred, in microseconds since the
    epoch (NULL without one)."""
    names = sorted({m.event for m in metrics})
    mine = events.filter(events.event_name.isin(names))
    return micros(mine.occurred_at.max(), _backend_name(events))


def day_sums(
    units: ir.Table,
    events: ir.Table,
    metrics: Sequence[MetricDefinition],
    *,
    as_of_us: int,
    days: int,
) -> ir.Table:
    """Σy and Σy² per ``variant × k`` of every metric at once (binary, count or sum; see the
    module docstring): rows ``variant, k, s0, ss0, s1, ss1, …`` (columns
    :func:`sum_column` and :func:`sum_sq_column`), only for days k < ``days`` complete by
    ``as_of_us`` on which some unit had a matching event.  One join of the metrics' events to
    the units, one group-by per (unit, day), one per (variant, day)."""
    if not metrics:
        raise ValueError("day_sums needs at least one metric")
    for metric in metrics:
        if metric.kind not in KINDS or metric.source != "events":
            raise ValueError(f"metric {metric.key!r}: only binary, count and sum event metrics")
    names = sorted({m.event for m in metrics})
    backend = _backend_name(events)
    wanted: dict[str, Any] = {
        "unit_id": events.unit_id,
        "value": events.value,
        "occurred_us": micros(events.occurred_at, backend),
        "event_code": _code(events.event_name, names),
    }
    if any(m.filter or m.value_field for m in metrics):
        wanted["properties"] = events.properties
    relevant = events.filter(events.event_name.isin(names)).select(**wanted)
    mine = units.select("uid", "unit_id", "variant", "exposed_us")
    joined = mine.inner_join(relevant, mine.unit_id == relevant.unit_id)
    offset = joined.occurred_us - joined.exposed_us
    joined = joined.mutate(k=_whole_days(offset), offset_us=offset)
    if backend == "postgres":
        # as in queries.unit_aggregates: keep PostgreSQL from re-evaluating the offset (and
        # the time conversion behind it) in every condition and grouping key, per event
        joined = joined.limit(_NO_LIMIT)
    joined = joined.filter(
        joined.offset_us >= 0,
        joined.offset_us < days * MICROS_PER_DAY,
        joined.exposed_us + (joined.k + 1) * MICROS_PER_DAY <= as_of_us,
    )
    per_day: dict[str, ir.Scalar] = {}
    for j, metric in enumerate(metrics):
        condition = joined.event_code == names.index(metric.event)
        if metric.filter:
            condition = condition & _filter_condition(joined.properties, metric.filter)
        if metric.kind is MetricKind.SUM:
            per_day[f"y{j}"] = _value(joined, metric).cast("float64").sum(where=condition)
        else:
            per_day[f"y{j}"] = joined.event_code.count(where=condition)
    unit_days = joined.group_by(["uid", "variant", "k"]).agg(**per_day)
    sums: dict[str, ir.Scalar] = {}
    for j, metric in enumerate(metrics):
        y = unit_days[f"y{j}"].cast("float64").fill_null(0.0)
        if metric.kind is MetricKind.BINARY:
            y = ibis.least(y, 1.0)
        sums[sum_column(j)] = y.sum()
        sums[sum_sq_column(j)] = (y * y).sum()
    return unit_days.group_by(["variant", "k"]).agg(**sums)

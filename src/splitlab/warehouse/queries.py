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
* **Day** — ``floor(epoch_us(exposed_at) / 86400e6)``: the UTC day of the unit's first exposure.
  Daily cumulative statistics at day d are the sums over units first exposed on or before d
  (cohort-cumulative; see :func:`sufficient_statistics`).
* **Segments** — exposure attributes; per segment the ``top_n`` most frequent values keep
  their name and the rest become ``"other"``; a missing attribute is ``"(none)"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from splitlab.domain import Capping, MetricDefinition, MetricKind
from splitlab.warehouse import unit_tables
from splitlab.warehouse.columns import (
    UNITS,
    attribute_column,
    covariate_column,
    covariate_cross,
    covariate_sum,
    metric_columns,
    numeric_attribute_column,
    outcome_covariate_cross,
    pre_period_covariate_cross,
    segment_column,
)

OTHER = "other"
MISSING = "(none)"


MICROS_PER_HOUR = 3_600_000_000
_NO_LIMIT = 2**63 - 1
"""A LIMIT that keeps every row: an optimisation fence on PostgreSQL (see ``unit_aggregates``)."""
MICROS_PER_DAY = 24 * MICROS_PER_HOUR


@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(moment: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """DuckDB's ``epoch_us``: microseconds since 1970 of a TIMESTAMPTZ, no time-zone work."""


@ibis.udf.scalar.builtin(name="date_part")
def _postgres_date_part(field: str, moment: dt.Timestamp(timezone="UTC")) -> dt.float64:  # type: ignore[valid-type]
    """PostgreSQL's ``date_part``: DOUBLE PRECISION (``EXTRACT`` returns slow NUMERIC)."""


def _backend_name(table: ir.Table) -> str:
    try:
        return str(table.get_backend().name)
    except Exception:  # an unbound table: use the portable form
        return ""


def micros(moment: ir.TimestampValue, backend: str) -> ir.IntegerValue:
    """Microseconds since the epoch (UTC) as an integer, exactly, on every engine.

    Window tests compare integer offsets ``event − exposure`` instead of adding intervals to
    TIMESTAMPTZ values, which DuckDB does through calendar (ICU) arithmetic, row by row.
    """
    if backend == "duckdb":
        return _duckdb_epoch_us(moment)
    if backend == "postgres":
        seconds = _postgres_date_part("epoch", moment)
        return (seconds * 1_000_000).round().cast("int64")
    # Doubles, not NUMERIC: ~1.7e9 s in a double is exact to 0.3 µs, so rounding recovers the
    # exact microsecond, and double arithmetic is many times faster than NUMERIC on PostgreSQL.
    return (moment.epoch_seconds().cast("float64") * 1_000_000).round().cast("int64")


def _us(hours: float) -> int:
    return round(hours * MICROS_PER_HOUR)


def _included(exposures: ir.Table, conflicts: ir.Table, experiment_key: str) -> ir.Table:
    mine = exposures.filter(exposures.experiment_key == experiment_key)
    bad = conflicts.filter(conflicts.experiment_key == experiment_key).select("unit_id")
    return mine.anti_join(bad, "unit_id")


@ibis.udf.scalar.builtin(name="json_extract_string")
def _duckdb_json_text(document: dt.JSON, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB's ``->>``: a string without quotes, any other JSON value as its JSON text."""


@ibis.udf.scalar.builtin(name="json_type")
def _duckdb_json_type(document: dt.JSON, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB's ``json_type``: the JSON type name of the value at ``path`` (NULL if absent)."""


def _duckdb_path(name: str) -> str:
    return "$." + '"' + name.replace('"', '\\"') + '"'


def _numeric_attribute(units: ir.Table, name: str) -> ir.FloatingValue:
    """An exposure attribute as a number: JSON numbers only (NULL for text, booleans, objects
    or a missing attribute), the same on every engine."""
    if _backend_name(units) == "duckdb":
        path = _duckdb_path(name)
        kind = _duckdb_json_type(units.attributes, path)
        text = _duckdb_json_text(units.attributes, path)
        return ibis.cases(
            (kind.isin(["UBIGINT", "BIGINT", "DOUBLE", "HUGEINT"]), text.cast("float64")),
            else_=ibis.null("float64"),
        )
    return units.attributes[name].unwrap_as("float64")


class CovariateSource(NamedTuple):
    """A named covariate as the query builders need it: a numeric exposure ``attribute``, or
    ``metric``'s per-unit value (count, sum or 0/1) over the ``days`` before exposure, or a
    ``column`` of the unit table (``unit_tables``); capped by ``capping``."""

    attribute: str | None
    metric: MetricDefinition | None
    days: int
    capping: Capping | None
    column: str | None = None


def _attribute(units: ir.Table, name: str) -> ir.StringValue:
    """An exposure attribute as text: strings as they are, other JSON values as JSON text."""
    if _backend_name(units) == "duckdb":
        text = _duckdb_json_text(units.attributes, _duckdb_path(name))
    else:
        attribute = units.attributes[name]
        text = ibis.coalesce(attribute.str, attribute.cast("string"))
    return text.fill_null(MISSING)


def top_values(units: ir.Table, column: str, *, top_n: int) -> ir.Table:
    """The ``top_n`` most frequent values of a text column of :func:`experiment_units` (a
    segment attribute), ``value, units``; ties broken by value."""
    counts = units.group_by(value=units[column]).agg(units=units.count())
    return counts.order_by([counts.units.desc(), counts.value]).limit(top_n)


def _code(value: ir.StringValue, labels: Sequence[str]) -> ir.IntegerValue:
    """Position of ``value`` in ``labels``, ``len(labels)`` for anything else."""
    if not labels:
        return ibis.literal(0, type="int16")
    cases = [(value == label, k) for k, label in enumerate(labels)]
    return ibis.cases(*cases, else_=len(labels)).cast("int16")


def experiment_units(
    exposures: ir.Table,
    conflicts: ir.Table,
    *,
    experiment_key: str,
    variants: Sequence[str],
    segments: Sequence[str] = (),
    numbered: bool = True,
    numeric: Mapping[int, str] | None = None,
) -> ir.Table:
    """Analysed units: ``unit_id, uid, variant, exposed_us, day, attr0 … attrK`` with an
    integer unit number ``uid`` and a small integer code for the variant (integers are much
    cheaper to group by and carry than text).

    ``variant`` is the position in ``variants`` (``len(variants)`` for an unknown variant).
    ``attr{k}`` is the text of attribute ``segments[k]`` (``"(none)"`` when missing), read from
    the JSON once per unit; :func:`unit_aggregates` turns it into a small code.  ``numbered=False``
    leaves ``uid`` out, for an engine that numbers the rows of a table by itself (DuckDB's
    ``rowid``: ``row_number()`` is a single-threaded window over all units).
    ``numeric`` maps a covariate index to its exposure attribute: ``num{j}`` is that
    attribute as a number (see :func:`_numeric_attribute`).
    """
    units = _included(exposures, conflicts, experiment_key)
    exposed_us = micros(units.exposed_at, _backend_name(exposures))
    columns: dict[str, Any] = {"unit_id": units.unit_id}
    if numbered:
        columns["uid"] = ibis.row_number().over()
    columns["variant"] = _code(units.variant_key, variants)
    columns["exposed_us"] = exposed_us
    columns["day"] = (exposed_us / MICROS_PER_DAY).floor().cast("int64")
    for index, name in enumerate(segments):
        columns[attribute_column(index)] = _attribute(units, name)
    for index, name in (numeric or {}).items():
        columns[numeric_attribute_column(index)] = _numeric_attribute(units, name)
    return units.select(**columns)


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
    """The event's value: the ``value_field`` property (numbers only) or the value column."""
    if metric.value_field:
        return events.properties[metric.value_field].unwrap_as("float64")
    return events.value


Window = tuple[int, int | None]
"""A window as microsecond offsets from exposure: [start, end) (end None = open)."""


def _window(metric: MetricDefinition) -> Window:
    start = _us(metric.window_start_hours)
    if metric.window_hours is None:
        return start, None
    return start, _us(metric.window_start_hours + metric.window_hours)


def _pre_window(metric: MetricDefinition) -> Window:
    return -metric.cuped_days * MICROS_PER_DAY, 0


def _within(offset: ir.IntegerValue, window: Window) -> ir.BooleanValue:
    start, end = window
    condition = offset >= start
    return condition if end is None else condition & (offset < end)


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


class _Aggregations:
    """Per-unit aggregates, each computed once however many metrics share it (``converted``
    and ``orders`` on the same event and window are one ``count``)."""

    def __init__(self, joined: ir.Table, names: Sequence[str]) -> None:
        self.joined = joined
        self.codes = {name: k for k, name in enumerate(names)}
        self.exprs: dict[str, ir.Scalar] = {}
        self.by_key: dict[tuple[Any, ...], str] = {}

    def _condition(self, metric: MetricDefinition, event: str, window: Window) -> ir.BooleanValue:
        joined = self.joined
        condition = (joined.event_code == self.codes[event]) & _within(joined.offset_us, window)
        if event == metric.event and metric.filter:
            condition = condition & _filter_condition(joined.properties, metric.filter)
        return condition

    def add(self, op: str, metric: MetricDefinition, event: str, window: Window) -> str:
        """The column name of ``op`` (count, sum, nulls, mean) over matching events."""
        filters = tuple(sorted(metric.filter.items())) if event == metric.event else ()
        value_field = metric.value_field if op != "count" else None
        key = (op, event, repr(filters), value_field, window)
        if key in self.by_key:
            return self.by_key[key]
        name = f"a{len(self.exprs)}"
        condition = self._condition(metric, event, window)
        joined = self.joined
        value = _value(joined, metric)
        if op == "count":
            expr: ir.Scalar = joined.event_code.count(where=condition)
        elif op == "nulls":
            expr = joined.event_code.count(where=condition & value.isnull())
        elif op == "sum":
            expr = value.sum(where=condition)
        else:
            expr = value.mean(where=condition)
        self.exprs[name] = expr
        self.by_key[key] = name
        return name


def _plan_aggregates(
    aggs: _Aggregations, metrics: Sequence[tuple[int, MetricDefinition]]
) -> dict[str, str]:
    """Map each per-metric column (events, nulls, value, covariate, quantile value; see
    :class:`~splitlab.warehouse.columns.MetricColumns`) to an aggregate column."""
    columns: dict[str, str] = {}
    for i, metric in metrics:
        window = _window(metric)
        kind = metric.kind
        names = metric_columns(i)
        columns[names.events] = aggs.add("count", metric, metric.event, window)
        if kind in (MetricKind.SUM, MetricKind.RATIO, MetricKind.QUANTILE):
            columns[names.nulls] = aggs.add("nulls", metric, metric.event, window)
        if kind in (MetricKind.BINARY, MetricKind.COUNT):
            columns[names.value] = columns[names.events]
        elif kind is MetricKind.QUANTILE:
            columns[names.quantile_value] = aggs.add("mean", metric, metric.event, window)
        else:
            columns[names.value] = aggs.add("sum", metric, metric.event, window)
        if kind is MetricKind.RATIO:
            assert metric.denominator_event is not None
            columns[names.covariate] = aggs.add("count", metric, metric.denominator_event, window)
        elif uses_cuped(metric):
            op = "sum" if kind is MetricKind.SUM else "count"
            columns[names.covariate] = aggs.add(op, metric, metric.event, _pre_window(metric))
    return columns


class UnitAggregates(NamedTuple):
    """The per-unit aggregates of :func:`unit_aggregates` and where each metric finds its own."""

    table: ir.Table
    """``uid, variant, exposed_us, day, seg0 … segK, a0 … aN``: one row per unit."""
    sources: dict[str, str]
    """Per-metric column (``MetricColumns`` per-unit names) → its ``a{j}``."""


def unit_aggregates(
    units: ir.Table,
    events: ir.Table,
    metrics: Sequence[MetricDefinition],
    *,
    segments: Sequence[Sequence[str]] = (),
    only: Sequence[int] | None = None,
    with_eventless_units: bool = True,
    covariates: Sequence[CovariateSource] = (),
    unit_values: ir.Table | None = None,
) -> UnitAggregates:
    """Per-unit aggregates next to each unit's variant, day and segments (in the engine): each
    distinct aggregate once, however many metrics share it (materialise this table; the
    metrics' columns are cheap expressions over it, see :func:`metric_values`).

    ``segments[k]`` lists the values of ``attr{k}`` kept by name (usually from
    :func:`top_values`); ``seg{k}`` is the position in that list, or its length for every
    other value (reported as ``"other"``).  ``only`` restricts to some metric indices;
    ``with_eventless_units=False`` drops units without relevant events (enough for quantiles).

    One pass: units LEFT JOIN their relevant events, grouped by unit (units without events
    keep one row of NULLs and get zeros).  A ``covariates[j]`` on a metric adds its
    pre-period aggregate (``c{j}`` in ``sources``); attribute covariates ride on the units.
    A ``source: units`` metric reads its column of ``unit_values`` (``unit_tables``), joined
    to the units before the events (no value for any unit when ``unit_values`` is None).
    """
    chosen = [(i, m) for i, m in enumerate(metrics) if only is None or i in only]
    from_table = unit_tables.table_columns([m for _, m in chosen])
    from_table += [c.column for c in covariates if c.column and c.column not in from_table]
    unit_sources: dict[str, str] = {}
    if from_table and unit_values is not None:
        units = unit_tables.join_unit_columns(units, unit_values, from_table)
        unit_sources = {
            metric_columns(i).value: unit_tables.unit_column(from_table.index(m.column))
            for i, m in chosen
            if m.source == "units" and m.column
        }
        unit_sources |= {
            covariate_column(j): unit_tables.unit_column(from_table.index(c.column))
            for j, c in enumerate(covariates)
            if c.column
        }
    chosen = [(i, m) for i, m in chosen if m.source == "events"]
    # segment codes on the units side of the join: once per unit, not once per event
    texts = {attribute_column(k) for k in range(len(segments))}
    units = units.select(
        *[c for c in units.columns if c not in texts],
        **{
            segment_column(k): _code(units[attribute_column(k)], kept)
            for k, kept in enumerate(segments)
        },
    )
    covariate_metrics = [(j, c.metric, c.days) for j, c in enumerate(covariates) if c.metric]
    names = sorted(
        {m.event for _, m in chosen}
        | {m.denominator_event for _, m in chosen if m.denominator_event}
        | {m.event for _, m, _ in covariate_metrics}
    )
    backend = _backend_name(events)
    needs_properties = any(m.filter or m.value_field for _, m in chosen) or any(
        m.filter or m.value_field for _, m, _ in covariate_metrics
    )
    wanted = {
        "unit_id": events.unit_id,
        "event_name": events.event_name,
        "value": events.value,
        "occurred_us": micros(events.occurred_at, backend),
    }
    if needs_properties:
        wanted["properties"] = events.properties
    # one small integer per event name, so each condition compares integers, not text
    wanted["event_code"] = _code(events.event_name, names)
    relevant = events.filter(events.event_name.isin(names)).select(**wanted)
    join = units.left_join if with_eventless_units else units.inner_join
    joined = join(relevant, units.unit_id == relevant.unit_id)
    joined = joined.mutate(offset_us=joined.occurred_us - joined.exposed_us)
    if backend == "postgres":
        # A LIMIT keeps PostgreSQL from flattening this subquery into the aggregate, where it
        # would re-evaluate the offset (and the codes behind it) in every FILTER, per event.
        joined = joined.limit(_NO_LIMIT)
    carried = [c for c in units.columns if c not in ("unit_id", "uid")]
    aggs = _Aggregations(joined, names)
    sources = _plan_aggregates(aggs, chosen)
    for j, metric, days in covariate_metrics:
        op = "sum" if metric.kind is MetricKind.SUM else "count"
        window = (-days * MICROS_PER_DAY, 0)
        sources[covariate_column(j)] = aggs.add(op, metric, metric.event, window)
    per_unit = joined.group_by("uid").agg(**{c: joined[c].max() for c in carried}, **aggs.exprs)
    return UnitAggregates(per_unit, sources | unit_sources)


def metric_values(
    per_unit: UnitAggregates,
    metrics: Sequence[MetricDefinition],
    *,
    as_of: datetime,
    only: Sequence[int] | None = None,
    covariates: Sequence[CovariateSource] = (),
) -> ir.Table:
    """Per-unit metric columns over :func:`unit_aggregates` (usually its materialised table,
    passed as ``per_unit._replace(table=…)``), capped; ``uid, variant, exposed_us, day,
    seg0 … segK`` and per metric the per-unit columns of
    :class:`~splitlab.warehouse.columns.MetricColumns`: value, covariate (CUPED or ratio
    denominator), quantile value (NULL without events), events, nulls, and immature (1 when
    the unit's window is still open at ``as_of``); and ``c{j}`` per covariate (0 when missing,
    0/1 for a binary metric's pre-period, capped by its own rule)."""
    chosen = [(i, m) for i, m in enumerate(metrics) if only is None or i in only]
    table, sources = per_unit
    as_of_us = round(as_of.timestamp() * 1_000_000)
    aggregated = set(sources.values())
    numeric = {numeric_attribute_column(j) for j in range(len(covariates))}
    columns: dict[str, Any] = {
        name: table[name]
        for name in table.columns
        if name not in aggregated and name not in numeric
    }
    for i, metric in chosen:
        names = metric_columns(i)
        if metric.source == "units":
            columns |= unit_tables.unit_metric_columns(
                table, metric, sources.get(names.value), names
            )
            continue
        columns[names.events] = table[sources[names.events]]
        nulls = sources.get(names.nulls)
        columns[names.nulls] = table[nulls] if nulls else ibis.literal(0, type="int64")
        if metric.kind is MetricKind.QUANTILE:
            columns[names.quantile_value] = table[sources[names.quantile_value]]
        else:
            y = table[sources[names.value]].cast("float64").fill_null(0.0)
            columns[names.value] = ibis.least(y, 1.0) if metric.kind is MetricKind.BINARY else y
        if has_x(metric):
            x = table[sources[names.covariate]].cast("float64").fill_null(0.0)
            binary = metric.kind is MetricKind.BINARY
            columns[names.covariate] = ibis.least(x, 1.0) if binary else x
        if metric.window_hours is not None:
            end = table.exposed_us + _us(metric.window_start_hours + metric.window_hours)
            columns[names.immature] = ibis.ifelse(end > as_of_us, 1, 0).cast("int64")
        else:
            columns[names.immature] = ibis.literal(0, type="int64")
    for j, covariate in enumerate(covariates):
        if covariate.column is not None:  # the unit table's column (NULL: not joined)
            found = sources.get(covariate_column(j))
            raw = table[found] if found else ibis.null("float64")
        elif covariate.metric is None:
            raw = table[numeric_attribute_column(j)]
        else:
            raw = table[sources[covariate_column(j)]]
        c = raw.cast("float64").fill_null(0.0)
        binary = covariate.metric is not None and covariate.metric.kind is MetricKind.BINARY
        columns[covariate_column(j)] = ibis.least(c, 1.0) if binary else c
    values = table.select(**columns)
    return _capped(values, chosen, covariates)


def _cap(values: ir.Table, column: str, capping: Capping) -> Any:
    if capping.type == "absolute":
        return ibis.literal(float(capping.value))
    return values[column].quantile(capping.value).as_scalar()


def _capped(
    values: ir.Table,
    metrics: Sequence[tuple[int, MetricDefinition]],
    covariates: Sequence[CovariateSource] = (),
) -> ir.Table:
    caps: dict[str, Any] = {}
    for j, covariate in enumerate(covariates):
        if covariate.capping is not None:
            column = covariate_column(j)
            caps[column] = ibis.least(values[column], _cap(values, column, covariate.capping))
    for i, metric in metrics:
        capping = metric.capping
        if capping is None or metric.kind in (MetricKind.BINARY, MetricKind.QUANTILE):
            continue
        names = metric_columns(i)
        cap = _cap(values, names.value, capping)
        caps[names.value] = ibis.least(values[names.value], cap)
        if uses_cuped(metric):
            caps[names.covariate] = ibis.least(values[names.covariate], cap)
    return values.mutate(**caps) if caps else values


def _covariate_sums(
    values: ir.Table,
    metrics: Sequence[MetricDefinition],
    n_covariates: int,
    adjusted: Mapping[int, Sequence[int]],
) -> dict[str, ir.Scalar]:
    """Σc and Σcᵢcⱼ of every covariate, and Σy·c (and Σx·c with a pre-period) of each
    adjusted metric with each of its covariates: the per-arm cross-product matrices."""
    aggs: dict[str, ir.Scalar] = {}
    for j in range(n_covariates):
        c = values[covariate_column(j)]
        aggs[covariate_sum(j)] = c.sum()
        for k in range(j, n_covariates):
            aggs[covariate_cross(j, k)] = (c * values[covariate_column(k)]).sum()
    for i, chosen in adjusted.items():
        names = metric_columns(i)
        for j in chosen:
            c = values[covariate_column(j)]
            aggs[outcome_covariate_cross(i, j)] = (values[names.value] * c).sum()
            if uses_cuped(metrics[i]):
                aggs[pre_period_covariate_cross(i, j)] = (values[names.covariate] * c).sum()
    return aggs


def _sums(values: ir.Table, metrics: Sequence[MetricDefinition]) -> dict[str, ir.Scalar]:
    aggs: dict[str, ir.Scalar] = {UNITS: values.uid.count()}
    for i, metric in enumerate(metrics):
        names = metric_columns(i)
        aggs[names.events] = values[names.events].sum()
        aggs[names.nulls] = values[names.nulls].sum()
        aggs[names.immature] = values[names.immature].sum()
        if metric.kind is MetricKind.QUANTILE:
            aggs[names.quantile_n] = values[names.quantile_value].count()
            continue
        y = values[names.value]
        aggs[names.sum] = y.sum()
        aggs[names.sum_sq] = (y * y).sum()
        if has_x(metric):
            x = values[names.covariate]
            aggs[names.sum_x] = x.sum()
            aggs[names.sum_x_sq] = (x * x).sum()
            aggs[names.sum_xy] = (x * y).sum()
    return aggs


def sufficient_statistics(
    values: ir.Table,
    metrics: Sequence[MetricDefinition],
    *,
    n_segments: int,
    n_covariates: int = 0,
    adjusted: Mapping[int, Sequence[int]] | None = None,
    crossed: Sequence[tuple[int, int, int]] = (),
    by_day: bool = True,
) -> ir.Table:
    """Sums per ``variant × day × (segment, value)`` for every metric at once.

    With segments, one block of rows per segment (``segment`` = its index, ``value`` = its
    code), unioned; without, one block with ``segment`` = -1 and ``value`` 0.  Each block covers
    every unit once, so overall figures are the sums over any one block, per-segment figures
    are its rows, and daily cumulative figures are running sums over ``day`` (the additive
    sums make the daily increments cheap; cumulation happens on the tiny result).
    With covariates, the sums of their cross-products too (``adjusted``: metric index → the
    covariates that adjust it; see :func:`_covariate_sums`).  Each crossed segment
    ``(a, b, width)`` adds a block ``segment`` = ``n_segments`` + its position, grouped by both
    codes at once: ``value`` = ``seg{a}`` · width + ``seg{b}`` (width: seg{b}'s codes, "other"
    included).  ``by_day=False`` sums over all days at once (``day`` 0).
    """
    aggs = _sums(values, metrics) | _covariate_sums(values, metrics, n_covariates, adjusted or {})
    labels: list[ir.IntegerValue] = [
        values[segment_column(k)].cast("int32") for k in range(n_segments)
    ]
    for a, b, width in crossed:
        code = values[segment_column(a)].cast("int32") * width + values[segment_column(b)]
        labels.append(code.cast("int32"))
    if not labels:
        labels, first = [ibis.literal(0, type="int32")], -1
    else:
        first = 0
    blocks = [
        values.group_by(
            variant=values.variant,
            day=values.day if by_day else ibis.literal(0, type="int64"),
            segment=ibis.literal(first + index if first >= 0 else -1, type="int8"),
            value=label,
        ).agg(**aggs)
        for index, label in enumerate(labels)
    ]
    return ibis.union(*blocks) if len(blocks) > 1 else blocks[0]


def event_values(
    units: ir.Table,
    events: ir.Table,
    metric: MetricDefinition,
    *,
    segments: Sequence[Sequence[str]] = (),
) -> ir.Table:
    """The metric's matching events with a value, one row each (``uid, variant, v, seg0 …
    segK``): the population of an event-level quantile (the event's name, filter and window
    as for the unit-level metric).  ``seg{k}`` is the unit's code of segment k among its kept
    labels ``segments[k]``, as in :func:`unit_aggregates` (coded once per unit, before the
    join)."""
    backend = _backend_name(events)
    mine = events.filter(events.event_name == metric.event)
    if metric.filter:
        mine = mine.filter(_filter_condition(mine.properties, metric.filter))
    mine = mine.select(
        unit_id=mine.unit_id, v=_value(mine, metric), occurred_us=micros(mine.occurred_at, backend)
    )
    codes = {
        segment_column(k): _code(units[attribute_column(k)], kept)
        for k, kept in enumerate(segments)
    }
    units = units.select("unit_id", "uid", "variant", "exposed_us", **codes)
    joined = units.inner_join(mine, units.unit_id == mine.unit_id)
    offset = joined.occurred_us - joined.exposed_us
    kept = joined.filter(_within(offset, _window(metric)), joined.v.notnull())
    return kept.select("uid", "variant", *codes, v=kept.v.cast("float64"))


def quantile_aggregates(
    values: ir.Table,
    *,
    metric_index: int,
    probabilities: Sequence[Sequence[float]],
    n_segments: int,
) -> ir.Table:
    """``quantile_cont`` of metric ``metric_index``'s quantile value at ``probabilities[block]``
    over the units with a value, in one scan:
    per variant (``segment`` -1, ``value`` 0: block 0) and per variant × segment value
    (``segment`` k, ``value`` its code: block k + 1); rows ``variant, segment, value,
    quantiles`` (``quantile_cont``/``percentile_cont``: linear interpolation, each probability
    evaluated on its own, so asking one group for another group's probabilities changes
    nothing).  Groups without values have no row."""
    column = metric_columns(metric_index).quantile_value
    present = values.filter(values[column].notnull())
    blocks = []
    for block in range(n_segments + 1):
        if block == 0:
            keys: dict[str, Any] = {
                "segment": ibis.literal(-1, type="int64"),
                "value": ibis.literal(0, type="int16"),
            }
        else:
            keys = {
                "segment": ibis.literal(block - 1, type="int64"),
                "value": present[segment_column(block - 1)].cast("int16"),
            }
        wanted = sorted(set(probabilities[block]))
        blocks.append(
            present.group_by(variant=present.variant, **keys).agg(
                quantiles=present[column].quantile(wanted)
            )
        )
    return ibis.union(*blocks) if len(blocks) > 1 else blocks[0]


def value_range(values: ir.Table, column: str, *, upper_quantile: float = 0.99) -> ir.Table:
    """One row ``low, high, upper, n`` over the units with a value in ``column`` of
    :func:`metric_values`: its smallest and largest value, its ``upper_quantile``-quantile (a
    histogram's right edge, so one heavy tail does not squeeze every unit into one bin) and
    how many units have a value."""
    present = values.filter(values[column].notnull())
    value = present[column].cast("float64")
    return present.aggregate(
        low=value.min(),
        high=value.max(),
        upper=value.quantile(upper_quantile),
        n=present.count(),
    )


def value_histogram(
    values: ir.Table, column: str, *, low: float, high: float, bins: int
) -> ir.Table:
    """Units per ``variant × bin`` of ``column`` (units without a value left out): bin k of
    ``bins`` covers [low + k·w, low + (k + 1)·w), w = (high − low) / bins; values below
    ``low`` count in bin 0 and values at or above ``high`` in the last bin, where ``beyond``
    counts those past ``high``.  Rows ``variant, bin, units, beyond`` (empty bins have none)."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    present = values.filter(values[column].notnull())
    value = present[column].cast("float64")
    width = (high - low) / bins if high > low else 1.0
    raw = ((value - low) / width).floor().cast("int64")
    position = ibis.least(ibis.greatest(raw, 0), bins - 1)
    past = ibis.ifelse(value > high, 1, 0).cast("int64")
    binned = present.select(variant=present.variant, bin=position, past=past)
    return binned.group_by(["variant", "bin"]).agg(units=binned.count(), beyond=binned.past.sum())

"""Run the warehouse queries and arrange their small results into cells × variants arrays.

A *cell* is one population to compare variants in: the whole experiment (cell 0), each
segment value, and each day (cumulative: units first exposed on or before that UTC day).
Every aggregate column becomes a float array of shape (cells, variants).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import ibis
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from splitlab.analysis.plan import AnalysisPlan
from splitlab.domain import MetricKind
from splitlab.stats import quantile_ranks
from splitlab.stats.event_quantile import clustered_quantile_ranks
from splitlab.warehouse import event_quantiles, queries, triggers, unit_tables
from splitlab.warehouse.columns import UNITS, attribute_column, metric_columns
from splitlab.warehouse.scratch import ScratchTables

FloatArray = npt.NDArray[np.float64]
RANK_ALPHA = 0.05
"""Order-statistic bracket used for quantile standard errors (see ``stats.quantile``)."""
EPOCH_DAY = date(1970, 1, 1)
CROSS = " × "
"""Joins the two attributes (and values) of a crossed segment's name (and value)."""


@dataclass(frozen=True)
class Cell:
    """``kind`` is overall, segment or day; segment cells name the segment and value (crossed
    segments name both attributes and both values, joined by :data:`CROSS`)."""

    kind: str
    segment: str | None = None
    value: str | None = None
    day: date | None = None
    crossed: bool = False
    """A segment cell of a crossed segment (``segment`` "a × b", ``value`` "x × y")."""


@dataclass
class Aggregates:
    """Sufficient statistics per cell × variant, plus exclusions and query timing."""

    cells: list[Cell]
    columns: dict[str, FloatArray]
    excluded: FloatArray
    day_increments_n: FloatArray
    timings_ms: dict[str, float] = field(default_factory=dict)

    def column(self, name: str) -> FloatArray:
        """An aggregate column by name (``splitlab.warehouse.columns``)."""
        return self.columns[name]

    @property
    def n(self) -> FloatArray:
        return self.columns[UNITS]

    def indices(self, kind: str) -> list[int]:
        return [i for i, cell in enumerate(self.cells) if cell.kind == kind]


def _to_numpy(table: pa.Table) -> dict[str, Any]:
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def population_units(
    scratch: ScratchTables,
    plan: AnalysisPlan,
    *,
    exposures: ibis.Table,
    conflicts: ibis.Table,
    events: ibis.Table,
    numeric: dict[int, str] | None = None,
    unit_attributes: ibis.Table | None = None,
    segments: bool = True,
) -> ibis.Table:
    """The analysed units, stored in ``scratch`` (``queries.experiment_units``): with their
    segment attributes (``segments``; from the unit table for ``plan.unit_segments``) and the
    numeric covariate attributes ``numeric``; with ``plan.trigger``, the triggered units
    counted from their first trigger."""
    units = scratch.units(
        exposures,
        conflicts,
        experiment_key=plan.key,
        variants=plan.variants,
        segments=plan.dimensions if segments else (),
        numeric=numeric,
    )
    if segments and plan.unit_segments and unit_attributes is not None:
        columns = {
            attribute_column(k): name
            for k, name in enumerate(plan.dimensions)
            if name in plan.unit_segments
        }
        units = scratch.store(
            "unit_attrs", unit_tables.join_unit_attributes(units, unit_attributes, columns)
        )
    if plan.trigger is not None:  # the triggered population, from each first trigger
        units = scratch.store("triggered", triggers.triggered_units(units, events, plan.trigger))
    return units


def fetch_aggregates(
    con: Any,
    *,
    exposures: ibis.Table,
    events: ibis.Table,
    conflicts: ibis.Table,
    plan: AnalysisPlan,
    as_of: datetime,
    unit_values: ibis.Table | None = None,
    unit_attributes: ibis.Table | None = None,
) -> Aggregates:
    """Execute the sufficient-statistics query (and the quantile query, if any) on ``con``.

    Per-unit tables live only inside the engine: the units (with their variant, day and
    segment attributes) and their metric values are materialised as temporary tables, so the
    top segment values, the statistics and the quantile queries share one read of the JSON
    attributes and one join of events to units (an engine may otherwise re-evaluate the JSON
    after the join, once per event). ``unit_values`` is the unit table that ``source: units``
    metrics read (joined to the units in the same per-unit table); ``unit_attributes`` the
    text attributes that ``plan.unit_segments`` read."""
    timings: dict[str, float] = {}
    definitions = plan.definitions
    sources = [c.source for c in plan.covariates]
    numeric = {j: c.attribute for j, c in enumerate(sources) if c.attribute is not None}
    started = time.perf_counter()
    with ScratchTables(con) as scratch:
        units = population_units(
            scratch,
            plan,
            exposures=exposures,
            conflicts=conflicts,
            events=events,
            numeric=numeric,
            unit_attributes=unit_attributes,
        )
        labels = [
            [
                str(v)
                for v in con.to_pyarrow(
                    queries.top_values(units, attribute_column(k), top_n=plan.top_n)
                )
                .column("value")
                .to_pylist()
            ]
            for k in range(len(plan.dimensions))
        ]
        per_unit = queries.unit_aggregates(
            units,
            events,
            definitions,
            segments=labels,
            covariates=sources,
            unit_values=unit_values,
        )
        stored = scratch.store("values", per_unit.table)
        # only the distinct aggregates are stored; metric columns are expressions over them
        values = queries.metric_values(
            per_unit._replace(table=stored), definitions, as_of=as_of, covariates=sources
        )
        timings["per_unit_tables"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        stats_expr = queries.sufficient_statistics(
            values,
            definitions,
            n_segments=len(plan.segments),
            n_covariates=len(sources),
            adjusted=plan.adjusted(),
            crossed=[(a, b, len(labels[b]) + 1) for a, b in plan.crossed_positions],
            by_day=plan.daily,
        )
        rows = _to_numpy(con.to_pyarrow(stats_expr))
        excluded_rows = _to_numpy(
            con.to_pyarrow(queries.excluded_units(exposures, conflicts, experiment_key=plan.key))
        )
        timings["sufficient_statistics"] = (time.perf_counter() - started) * 1000
        aggregates = _arrange(rows, plan, labels)
        variant_index = {v: i for i, v in enumerate(plan.variants)}
        excluded = np.zeros(len(plan.variants))
        for variant, count in zip(excluded_rows["variant"], excluded_rows["excluded"], strict=True):
            if variant in variant_index:
                excluded[variant_index[variant]] += float(count)
        aggregates.excluded = excluded
        quantiles = [i for i, m in enumerate(definitions) if m.kind is MetricKind.QUANTILE]
        if quantiles:
            started = time.perf_counter()
            for i in quantiles:
                if i in plan.event_quantiles:
                    coded = labels[: len(plan.segments)]  # each unit's code per segment
                    table = scratch.store(
                        f"events{i}",
                        queries.event_values(units, events, definitions[i], segments=coded),
                    )
                    _fill_event_quantiles(con, table, aggregates, plan, i, labels)
                else:
                    _fill_quantiles(con, values, aggregates, plan, i, labels)
            timings["quantiles"] = (time.perf_counter() - started) * 1000
    aggregates.timings_ms = timings
    return aggregates


def segment_label(kept: list[str], code: int) -> str:
    return kept[code] if code < len(kept) else queries.OTHER


def _arrange(rows: dict[str, Any], plan: AnalysisPlan, kept: list[list[str]]) -> Aggregates:
    n_variants = len(plan.variants)
    segment_ids = np.asarray(rows["segment"], dtype=np.int64)
    days = np.asarray(rows["day"], dtype=np.int64)
    vidx = np.asarray(rows["variant"], dtype=np.int64)
    known = vidx < n_variants  # units logged under a variant the experiment does not have
    vidx = np.where(known, vidx, 0)
    codes = np.asarray(rows["value"], dtype=np.int64)
    main = (segment_ids == (0 if plan.segments or plan.crossed else -1)) & known
    cells: list[Cell] = [Cell("overall")]
    row_cells = [(np.flatnonzero(main), np.zeros(int(main.sum()), np.int64))]
    blocks: list[tuple[str, Any]] = [(name, None) for name in plan.segments]
    blocks += [
        (f"{a}{CROSS}{b}", (ia, ib))
        for (a, b), (ia, ib) in zip(plan.crossed, plan.crossed_positions, strict=True)
    ]
    for index, (name, pair) in enumerate(blocks):
        in_block = (segment_ids == index) & known
        present = sorted(set(codes[in_block].tolist()))
        offset = len(cells)
        if pair is None:
            cells += [Cell("segment", name, segment_label(kept[index], c)) for c in present]
        else:
            width = len(kept[pair[1]]) + 1
            cells += [
                Cell(
                    "segment",
                    name,
                    segment_label(kept[pair[0]], c // width)
                    + CROSS
                    + segment_label(kept[pair[1]], c % width),
                    crossed=True,
                )
                for c in present
            ]
        lookup = np.zeros(max(present, default=0) + 1, np.int64)
        lookup[present] = offset + np.arange(len(present))
        picked = np.flatnonzero(in_block)
        row_cells.append((picked, lookup[codes[picked]]))
    busy = main.any() and plan.daily
    unique_days = np.unique(days[main]) if busy else np.array([], np.int64)
    day_offset = len(cells)
    if unique_days.size:
        all_days = np.arange(unique_days[0], unique_days[-1] + 1)
    else:
        all_days = np.array([], np.int64)
    cells += [Cell("day", day=EPOCH_DAY + timedelta(days=int(d))) for d in all_days]
    n_cells = len(cells)
    names = [c for c in rows if c not in ("variant", "day", "segment", "value")]
    columns: dict[str, FloatArray] = {}
    picked_main = np.flatnonzero(main)
    day_pos = days[picked_main] - (all_days[0] if all_days.size else 0)
    increments_n = np.zeros((all_days.size, n_variants))
    for name in names:
        data = np.asarray(rows[name], dtype=np.float64)
        data = np.where(np.isnan(data), 0.0, data)
        out = np.zeros((n_cells, n_variants))
        for picked, cell_ids in row_cells:
            np.add.at(out, (cell_ids, vidx[picked]), data[picked])
        if all_days.size:
            daily = np.zeros((all_days.size, n_variants))
            np.add.at(daily, (day_pos, vidx[picked_main]), data[picked_main])
            if name == UNITS:
                increments_n = daily.copy()
            out[day_offset:] = np.cumsum(daily, axis=0)
        columns[name] = out
    return Aggregates(cells, columns, np.zeros(n_variants), increments_n)


def _quantile_cells(
    aggregates: Aggregates, plan: AnalysisPlan, kept: list[list[str]]
) -> dict[int, tuple[int, int]]:
    """The cells a quantile is computed for → (block, code): the overall cell is block 0 code
    0, a value of segment k is block k + 1 and its code among ``kept[k]`` (daily cells are
    left out — cumulative quantiles are not additive — and so are crossed cells)."""
    segment_positions = {name: k for k, name in enumerate(plan.segments)}
    out: dict[int, tuple[int, int]] = {}
    for c, cell in enumerate(aggregates.cells):
        if cell.kind == "day" or cell.crossed:
            continue
        block, code = 0, 0
        if cell.kind == "segment":
            seg_index = segment_positions[cell.segment or ""]
            labels = kept[seg_index]
            block = seg_index + 1
            code = labels.index(cell.value) if cell.value in labels else len(labels)
        out[c] = (block, code)
    return out


def _fill_event_quantiles(
    con: Any,
    table: ibis.Table,
    aggregates: Aggregates,
    plan: AnalysisPlan,
    index: int,
    kept: list[list[str]],
) -> None:
    """Event-level quantile of metric ``index`` per variant in the overall and segment cells,
    with the clustered delta-method bracket (``stats.clustered_quantile_ranks``): the
    estimate over the cell's events, then each unit's events at or below its cell's estimate
    (Iᵢ) and its events (Nᵢ) summed, then the quantiles at the bracket — three small queries
    on the stored events (``warehouse.event_quantiles``), each covering every cell at once."""
    definition = plan.definitions[index]
    assert definition.quantile is not None
    q = float(definition.quantile)
    names = metric_columns(index)
    shape = aggregates.column(names.quantile_n).shape
    estimate, lower, upper = (np.full(shape, np.nan) for _ in range(3))
    n_variants = len(plan.variants)
    n_blocks = len(plan.segments) + 1
    cells = {key: c for c, key in _quantile_cells(aggregates, plan, kept).items()}

    def keyed(rows: pa.Table) -> dict[tuple[int, int, int], dict[str, Any]]:
        """(block, code, variant) → row, for the cells and variants of the analysis."""
        out = {}
        for row in rows.to_pylist():
            block, code, v = int(row["segment"]) + 1, int(row["value"]), int(row["variant"])
            if v < n_variants and (block, code) in cells:
                out[(block, code, v)] = row
        return out

    first = keyed(
        con.to_pyarrow(event_quantiles.event_quantiles(table, probabilities=[[q]] * n_blocks))
    )
    found = {key: float(row["quantiles"][0]) for key, row in first.items() if row["quantiles"]}
    if not found:
        _store_quantiles(aggregates, index, estimate, lower, upper)
        return
    thresholds: list[dict[tuple[int, int], float]] = [{} for _ in range(n_blocks)]
    for (block, code, v), value in found.items():
        thresholds[block][(v, code)] = value
    sums = con.to_pyarrow(event_quantiles.clustered_sums(table, thresholds=thresholds))
    brackets: dict[tuple[int, int, int], tuple[float, float]] = {}
    for key, row in keyed(sums).items():
        if key not in found:
            continue
        low, high = clustered_quantile_ranks(
            q,
            row["units"],
            row["si"],
            row["sii"],
            row["sn"],
            row["snn"],
            row["sin"],
            RANK_ALPHA,
        )
        if np.isfinite(low) and np.isfinite(high):  # a single unit has no variance
            brackets[key] = (float(low), float(high))
    probabilities: list[set[float]] = [set() for _ in range(n_blocks)]
    for (block, _, _), pair in brackets.items():
        probabilities[block].update(pair)
    if brackets:
        wanted = [sorted(ps) for ps in probabilities]
        rows = con.to_pyarrow(event_quantiles.event_quantiles(table, probabilities=wanted))
        for key, row in keyed(rows).items():
            if key not in brackets or row["quantiles"] is None:
                continue
            block, code, v = key
            at = dict(zip(wanted[block], row["quantiles"], strict=True))
            c = cells[(block, code)]
            estimate[c, v] = found[key]
            lower[c, v], upper[c, v] = (float(at[p]) for p in brackets[key])
    _store_quantiles(aggregates, index, estimate, lower, upper)


def _store_quantiles(
    aggregates: Aggregates,
    index: int,
    estimate: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
) -> None:
    names = metric_columns(index)
    aggregates.columns[names.quantile_estimate] = estimate
    aggregates.columns[names.quantile_low] = lower
    aggregates.columns[names.quantile_high] = upper


def _fill_quantiles(
    con: Any,
    values: ibis.Table,
    aggregates: Aggregates,
    plan: AnalysisPlan,
    index: int,
    kept: list[list[str]],
) -> None:
    """Estimate and order-statistic bracket of metric ``index`` for overall and segment cells
    (daily cells stay NaN: cumulative quantiles are not additive)."""
    definition = plan.definitions[index]
    assert definition.quantile is not None
    q = float(definition.quantile)
    names = metric_columns(index)
    counts = aggregates.column(names.quantile_n)
    shape = counts.shape
    estimate = np.full(shape, np.nan)
    lower = np.full(shape, np.nan)
    upper = np.full(shape, np.nan)
    # per cell × variant: its block (0 overall, k + 1 segment k), code and probabilities
    wanted: dict[tuple[int, int, int], tuple[int, int, tuple[float, float, float]]] = {}
    probabilities: list[set[float]] = [set() for _ in range(len(plan.segments) + 1)]
    for c, (block, code) in _quantile_cells(aggregates, plan, kept).items():
        for v in range(len(plan.variants)):
            n = counts[c, v]
            if n < 1:
                continue
            low, high = quantile_ranks(n, q, RANK_ALPHA)
            ps = (q, float(low), float(high))
            wanted[(block, code, v)] = (c, v, ps)
            probabilities[block].update(ps)
    if wanted:
        expr = queries.quantile_aggregates(
            values,
            metric_index=index,
            probabilities=[sorted(ps) for ps in probabilities],
            n_segments=len(plan.segments),
        )
        for row in con.to_pyarrow(expr).to_pylist():
            key = (int(row["segment"]) + 1, int(row["value"]), int(row["variant"]))
            if key not in wanted or row["quantiles"] is None:
                continue
            c, v, ps = wanted[key]
            found = dict(zip(sorted(probabilities[key[0]]), row["quantiles"], strict=True))
            estimate[c, v], lower[c, v], upper[c, v] = (float(found[p]) for p in ps)
    _store_quantiles(aggregates, index, estimate, lower, upper)

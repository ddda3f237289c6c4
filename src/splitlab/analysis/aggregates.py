"""Run the warehouse queries and arrange their small results into cells × variants arrays.

A *cell* is one population to compare variants in: the whole experiment (cell 0), each
segment value, and each day (cumulative: units first exposed on or before that UTC day).
Every aggregate column becomes a float array of shape (cells, variants).
"""

from __future__ import annotations

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
from splitlab.warehouse import queries

FloatArray = npt.NDArray[np.float64]
RANK_ALPHA = 0.05
"""Order-statistic bracket used for quantile standard errors (see ``stats.quantile``)."""
EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True)
class Cell:
    """``kind`` is overall, segment or day; segment cells name the segment and value."""

    kind: str
    segment: str | None = None
    value: str | None = None
    day: date | None = None

    def segment_json(self) -> dict[str, str] | None:
        if self.kind != "segment":
            return None
        return {"name": self.segment or "", "value": self.value or ""}


@dataclass
class Aggregates:
    """Sufficient statistics per cell × variant, plus exclusions and query timing."""

    cells: list[Cell]
    columns: dict[str, FloatArray]
    excluded: FloatArray
    day_increments_n: FloatArray
    timings_ms: dict[str, float] = field(default_factory=dict)

    def column(self, name: str) -> FloatArray:
        return self.columns[name]

    @property
    def n(self) -> FloatArray:
        return self.columns["n"]

    def indices(self, kind: str) -> list[int]:
        return [i for i, cell in enumerate(self.cells) if cell.kind == kind]


def _to_numpy(table: pa.Table) -> dict[str, Any]:
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def fetch_aggregates(
    con: Any,
    *,
    exposures: ibis.Table,
    events: ibis.Table,
    conflicts: ibis.Table,
    plan: AnalysisPlan,
    as_of: datetime,
) -> Aggregates:
    """Execute the sufficient-statistics query (and the quantile query, if any) on ``con``."""
    import time

    timings: dict[str, float] = {}
    definitions = plan.definitions
    units = queries.experiment_units(
        exposures,
        conflicts,
        experiment_key=plan.key,
        segments=plan.segments,
        top_n=plan.top_n,
    )
    values = queries.unit_values(units, events, definitions, as_of=as_of)
    stats_expr = queries.sufficient_statistics(values, definitions, n_segments=len(plan.segments))
    started = time.perf_counter()
    rows = _to_numpy(con.to_pyarrow(stats_expr))
    excluded_rows = _to_numpy(
        con.to_pyarrow(queries.excluded_units(exposures, conflicts, experiment_key=plan.key))
    )
    timings["sufficient_statistics"] = (time.perf_counter() - started) * 1000
    aggregates = _arrange(rows, plan)
    variant_index = {v: i for i, v in enumerate(plan.variants)}
    excluded = np.zeros(len(plan.variants))
    for variant, count in zip(excluded_rows["variant"], excluded_rows["excluded"], strict=True):
        if variant in variant_index:
            excluded[variant_index[variant]] += float(count)
    aggregates.excluded = excluded
    quantiles = [i for i, m in enumerate(definitions) if m.kind is MetricKind.QUANTILE]
    if quantiles:
        started = time.perf_counter()
        light = queries.unit_values(units, events, definitions, as_of=as_of, only=quantiles)
        for i in quantiles:
            _fill_quantiles(con, light, aggregates, plan, i)
        timings["quantiles"] = (time.perf_counter() - started) * 1000
    aggregates.timings_ms = timings
    return aggregates


def _arrange(rows: dict[str, Any], plan: AnalysisPlan) -> Aggregates:
    variants = {v: i for i, v in enumerate(plan.variants)}
    n_variants = len(plan.variants)
    segment_ids = np.asarray(rows["segment"], dtype=np.int64)
    days = np.asarray(rows["day"], dtype=np.int64)
    known = np.array([v in variants for v in rows["variant"]], dtype=bool)
    vidx = np.array([variants.get(v, 0) for v in rows["variant"]], dtype=np.int64)
    first_block = segment_ids == (0 if plan.segments else -1)
    main = first_block & known
    cells: list[Cell] = [Cell("overall")]
    row_cells: list[tuple[np.ndarray, np.ndarray]] = [
        (np.flatnonzero(main), np.zeros(main.sum(), np.int64))
    ]
    values = np.asarray(rows["value"], dtype=object)
    for index, name in enumerate(plan.segments):
        in_block = (segment_ids == index) & known
        labels = sorted({str(v) for v in values[in_block]})
        offset = len(cells)
        cells += [Cell("segment", name, label) for label in labels]
        lookup = {label: offset + k for k, label in enumerate(labels)}
        picked = np.flatnonzero(in_block)
        row_cells.append((picked, np.array([lookup[str(values[r])] for r in picked], np.int64)))
    unique_days = np.unique(days[main]) if main.any() else np.array([], np.int64)
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
            if name == "n":
                increments_n = daily.copy()
            out[day_offset:] = np.cumsum(daily, axis=0)
        columns[name] = out
    return Aggregates(cells, columns, np.zeros(n_variants), increments_n)


def _fill_quantiles(
    con: Any, values: ibis.Table, aggregates: Aggregates, plan: AnalysisPlan, index: int
) -> None:
    """Estimate and order-statistic bracket of metric ``index`` for overall and segment cells
    (daily cells stay NaN: cumulative quantiles are not additive)."""
    definition = plan.definitions[index]
    assert definition.quantile is not None
    q = float(definition.quantile)
    counts = aggregates.column(f"nq{index}")
    shape = counts.shape
    estimate = np.full(shape, np.nan)
    lower = np.full(shape, np.nan)
    upper = np.full(shape, np.nan)
    groups: list[queries.QuantileGroup] = []
    targets: list[tuple[int, int]] = []
    segment_positions = {name: k for k, name in enumerate(plan.segments)}
    for c, cell in enumerate(aggregates.cells):
        if cell.kind == "day":
            continue
        for v, variant in enumerate(plan.variants):
            n = counts[c, v]
            if n < 1:
                continue
            low, high = quantile_ranks(n, q, RANK_ALPHA)
            seg_index = segment_positions[cell.segment or ""] if cell.kind == "segment" else None
            groups.append(
                queries.QuantileGroup(variant, seg_index, cell.value, (q, float(low), float(high)))
            )
            targets.append((c, v))
    if groups:
        row = con.to_pyarrow(
            queries.quantile_aggregates(values, metric_index=index, groups=groups)
        ).to_pylist()[0]
        for k, (c, v) in enumerate(targets):
            found = row[f"g{k}"]
            if found is None:
                continue
            estimate[c, v], lower[c, v], upper[c, v] = (float(x) for x in found)
    aggregates.columns[f"qest{index}"] = estimate
    aggregates.columns[f"qlo{index}"] = lower
    aggregates.columns[f"qhi{index}"] = upper

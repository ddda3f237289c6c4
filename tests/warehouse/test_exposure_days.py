"""The days-since-exposure sums (``warehouse.exposure_days``) on a small hand-built warehouse,
on DuckDB and PostgreSQL: against an independent pandas computation from the raw rows, and
pinned numbers for the cases the definitions spell out (day boundaries, incomplete days,
events before exposure, filters, value fields, NULL values, conflicts, unknown variants)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from splitlab.domain import MetricDefinition
from splitlab.warehouse import Warehouse, queries
from splitlab.warehouse import exposure_days as ed

T0 = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)
DAY = timedelta(days=1)
AS_OF = T0 + timedelta(days=4, hours=3)
DAYS = 3
VARIANTS = ("control", "b")

EXPOSURES = [  # unit, variant, exposed at
    ("u1", "control", T0),
    ("u2", "control", T0 + timedelta(hours=20)),
    ("u3", "b", T0 + timedelta(hours=2)),
    ("u4", "b", T0 + timedelta(days=2, hours=4)),  # 1 day 23 h before AS_OF: day 0 only
    ("u5", "b", T0 + timedelta(days=4)),  # no complete day
    ("u6", "control", T0 + timedelta(hours=1)),  # exposed to both arms: excluded
    ("u6", "b", T0 + timedelta(hours=2)),
    ("u7", "zzz", T0),  # a variant the experiment does not have
]
EVENTS = [  # unit, name, value, at (offset from exposure), properties
    ("u1", "buy", 10.0, timedelta(hours=1), {"plan": "pro", "amount": 4}),
    ("u1", "buy", 5.0, timedelta(hours=23, minutes=59), {"plan": "free"}),
    ("u1", "buy", 7.0, DAY, {"plan": "pro", "amount": 2}),  # exactly day 1
    ("u1", "buy", 1.0, -timedelta(hours=2), {"plan": "pro"}),  # before exposure
    ("u1", "buy", 3.0, 3 * DAY + timedelta(hours=1), {"plan": "pro"}),  # day 3 ≥ DAYS
    ("u1", "view", None, timedelta(hours=5), {}),
    ("u2", "buy", None, timedelta(hours=2), {"plan": "pro"}),  # NULL value
    ("u2", "buy", 2.5, 2 * DAY + timedelta(hours=4), {"plan": "pro", "amount": "x"}),
    ("u2", "view", None, 2 * DAY, {}),
    ("u3", "buy", 4.0, timedelta(hours=3), {"plan": "free"}),
    ("u3", "buy", 6.0, timedelta(hours=4), {"plan": "pro", "amount": 1.5}),
    ("u3", "buy", 8.0, 2 * DAY + timedelta(hours=1), {"plan": "pro"}),
    ("u3", "view", None, DAY + timedelta(hours=1), {}),
    ("u4", "buy", 9.0, timedelta(hours=5), {"plan": "pro"}),
    ("u4", "buy", 9.0, DAY + timedelta(hours=5), {"plan": "pro"}),  # day 1 incomplete
    ("u5", "buy", 1.0, timedelta(hours=1), {"plan": "pro"}),  # day 0 incomplete
    ("u6", "buy", 100.0, timedelta(hours=1), {"plan": "pro"}),  # excluded unit
    ("u7", "buy", 100.0, timedelta(hours=1), {"plan": "pro"}),  # unknown variant
]
METRICS = [
    MetricDefinition(key="bought", kind="binary", event="buy"),
    MetricDefinition(key="pro_buys", kind="count", event="buy", filter={"plan": "pro"}),
    MetricDefinition(key="spend", kind="sum", event="buy", window_hours=2),  # window ignored
    MetricDefinition(key="amount", kind="sum", event="buy", value_field="amount"),
    MetricDefinition(key="views", kind="count", event="view"),
]


def _write(warehouse: Warehouse) -> None:
    exposed: dict[str, datetime] = {}
    for unit, _variant, at in EXPOSURES:
        exposed.setdefault(unit, at)
    warehouse.record_exposures(
        [
            {"experiment_key": "nov", "variant_key": v, "unit_id": u, "exposed_at": at}
            for u, v, at in EXPOSURES
        ]
        + [{"experiment_key": "other", "variant_key": "b", "unit_id": "u9", "exposed_at": T0}]
    )
    warehouse.write_events(
        [
            {
                "unit_id": unit,
                "event_name": name,
                "value": value,
                "occurred_at": exposed[unit] + offset,
                "properties": properties,
                "event_id": f"e{i}",
            }
            for i, (unit, name, value, offset, properties) in enumerate(EVENTS)
        ]
    )


def _expected() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Units per variant × k and Σy, Σy² per variant × k × metric, from the raw rows."""
    arms: dict[str, set[str]] = {}
    first: dict[str, datetime] = {}
    for unit, variant, at in EXPOSURES:
        arms.setdefault(unit, set()).add(variant)
        first.setdefault(unit, at)
    units = pd.DataFrame(
        [
            (u, VARIANTS.index(next(iter(v))), first[u])
            for u, v in arms.items()
            if len(v) == 1 and next(iter(v)) in VARIANTS
        ],
        columns=["unit", "variant", "exposed"],
    )
    grid = units.merge(pd.DataFrame({"k": range(DAYS)}), how="cross")
    grid = grid[grid.exposed + (grid.k + 1) * DAY <= AS_OF]
    n = grid.groupby(["variant", "k"]).size().rename("units").reset_index()
    events = pd.DataFrame(EVENTS, columns=["unit", "name", "value", "offset", "props"])
    rows = []
    for _, cell in grid.iterrows():
        mine = events[events.unit == cell.unit]
        start = cell.k * DAY
        in_day = mine[(mine.offset >= start) & (mine.offset < start + DAY)]
        buys = in_day[in_day.name == "buy"]
        amounts = [
            float(p["amount"]) for p in buys.props if isinstance(p.get("amount"), int | float)
        ]
        ys = {
            "bought": float(len(buys) > 0),
            "pro_buys": float(sum(p.get("plan") == "pro" for p in buys.props)),
            "spend": float(np.nansum(buys.value.astype(float))) if len(buys) else 0.0,
            "amount": float(sum(amounts)),
            "views": float((in_day.name == "view").sum()),
        }
        for metric, y in ys.items():
            rows.append((cell.variant, cell.k, metric, y))
    values = pd.DataFrame(rows, columns=["variant", "k", "metric", "y"])
    values["yy"] = values.y**2
    sums = values.groupby(["variant", "k", "metric"])[["y", "yy"]].sum().reset_index()
    return n, sums


def _run(warehouse: Warehouse) -> tuple[dict[tuple[int, int], float], dict[Any, float]]:
    con = warehouse.ibis_connection()
    units = queries.experiment_units(
        warehouse.exposures_table(),
        warehouse.conflicts_table(),
        experiment_key="nov",
        variants=VARIANTS,
    )
    as_of_us = round(AS_OF.timestamp() * 1_000_000)
    complete = con.to_pyarrow(ed.complete_days(units, as_of_us=as_of_us, days=DAYS)).to_pylist()
    # units with day k complete = units with more than k complete days
    n: dict[tuple[int, int], float] = {}
    for row in complete:
        if int(row["variant"]) >= len(VARIANTS):  # u7: the analysis leaves it out too
            continue
        for k in range(int(row["complete"])):
            key = (int(row["variant"]), k)
            n[key] = n.get(key, 0.0) + row["units"]
    expr = ed.day_sums(units, warehouse.events_table(), METRICS, as_of_us=as_of_us, days=DAYS)
    sums: dict[Any, float] = {}
    for row in con.to_pyarrow(expr).to_pylist():
        if int(row["variant"]) >= len(VARIANTS):
            continue
        for j, metric in enumerate(METRICS):
            key = (int(row["variant"]), int(row["k"]), metric.key)
            sums[key] = float(row[ed.sum_column(j)])
            sums[(*key, "sq")] = float(row[ed.sum_sq_column(j)])
    return n, sums


def test_day_sums_match_pandas_on_the_raw_rows(warehouse: Warehouse) -> None:
    _write(warehouse)
    n, sums = _run(warehouse)
    want_n, want_sums = _expected()
    assert n == {(int(r.variant), int(r.k)): float(r.units) for r in want_n.itertuples()}
    for r in want_sums.itertuples():
        key = (int(r.variant), int(r.k), r.metric)
        assert sums.get(key, 0.0) == pytest.approx(r.y), key
        assert sums.get((*key, "sq"), 0.0) == pytest.approx(r.yy), key
    # no sums beyond the expected cells (an incomplete day, an excluded or unknown unit)
    cells = {(int(r.variant), int(r.k)) for r in want_n.itertuples()}
    assert {k[:2] for k in sums} <= cells


def test_pinned_numbers(warehouse: Warehouse) -> None:
    """By hand: control is u1 (exposed 06:30, 4 complete days → days 0–2) and u2 (exposed
    02:30 next day, 3 complete days → 0–2); b is u3 (0–2) and u4 (1 day 23 h before as_of →
    day 0); u5 has no complete day, u6 is excluded, u7's variant is unknown."""
    _write(warehouse)
    n, sums = _run(warehouse)
    assert n == {(0, 0): 2, (0, 1): 2, (0, 2): 2, (1, 0): 2, (1, 1): 1, (1, 2): 1}
    # control, day 0: u1 bought twice (10 + 5; the event 2 h before exposure is out),
    # u2 once (NULL value); pro buys: u1 one, u2 one; amount: u1's 4
    assert sums[(0, 0, "bought")] == 2 and sums[(0, 0, "bought", "sq")] == 2
    assert sums[(0, 0, "pro_buys")] == 2 and sums[(0, 0, "pro_buys", "sq")] == 2
    assert sums[(0, 0, "spend")] == 15 and sums[(0, 0, "spend", "sq")] == 225
    assert sums[(0, 0, "amount")] == 4
    assert sums[(0, 0, "views")] == 1
    # control, day 1: u1's buy at exactly exposure + 24 h
    assert sums[(0, 1, "spend")] == 7 and sums[(0, 1, "amount")] == 2
    # control, day 2: u2's 2.5 ("amount": "x" is not a number) and view at exactly 48 h
    assert sums[(0, 2, "spend")] == 2.5 and sums[(0, 2, "amount")] == 0
    assert sums[(0, 2, "views")] == 1
    # b, day 0: u3 (4 + 6) and u4 (9); Σy² per unit, not per event
    assert sums[(1, 0, "spend")] == 19 and sums[(1, 0, "spend", "sq")] == 100 + 81
    assert sums[(1, 0, "pro_buys")] == 2 and sums[(1, 0, "amount")] == 1.5
    # b, day 1: u3's view only (u4's day-1 buy is on an incomplete day)
    assert sums[(1, 1, "bought")] == 0 and sums[(1, 1, "views")] == 1
    assert sums[(1, 2, "spend")] == 8


def test_newest_event_of_the_metrics_names(warehouse: Warehouse) -> None:
    _write(warehouse)
    con = warehouse.ibis_connection()
    events = warehouse.events_table()
    views = [m for m in METRICS if m.event == "view"]
    newest_view = T0 + timedelta(hours=20) + 2 * DAY  # u2's view at exactly 48 h
    newest_buy = T0 + 4 * DAY + timedelta(hours=1)  # u5's, on its incomplete day 0
    assert con.execute(ed.newest_event(events, views)) == round(newest_view.timestamp() * 1e6)
    assert con.execute(ed.newest_event(events, METRICS)) == round(newest_buy.timestamp() * 1e6)


def test_only_per_unit_sum_metrics() -> None:
    ratio = MetricDefinition(key="r", kind="ratio", event="buy", denominator_event="view")
    table: Any = None
    with pytest.raises(ValueError, match="binary, count and sum"):
        ed.day_sums(table, table, [ratio], as_of_us=0, days=1)
    with pytest.raises(ValueError, match="at least one"):
        ed.day_sums(table, table, [], as_of_us=0, days=1)

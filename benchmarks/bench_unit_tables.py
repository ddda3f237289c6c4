"""What a per-unit table and a trigger cost an analysis (issue 16), on DuckDB.

Run: ``python benchmarks/bench_unit_tables.py [--units 200000] [--repeats 5]``.

Data (made with DuckDB SQL in a temporary warehouse file): ``--units`` exposed units in two
variants over 14 days, 5 events per unit on average (purchases with a value, and
``checkout_started`` for about a third of the units), and a unit table with two columns per
unit (``revenue_30d``, ``conversions_7d``). Three analyses (``run_analysis``, nothing stored,
no segments), each the median of ``--repeats`` runs with its spread (min–max):

* **events**: two event metrics (binary, sum) — the baseline;
* **+ unit table**: the same plus two ``source: units`` metrics (sum, binary) read from the
  unit table in the same pass;
* **+ trigger**: the events plan with ``plan.trigger`` (the triggered pass plus the assigned
  population's overall-only second pass).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from splitlab.analysis import build_plan, run_analysis
from splitlab.domain import ExperimentSpec, MetricDefinition
from splitlab.warehouse import Warehouse
from splitlab.warehouse.schema import DUCKDB_DDL

METRICS = [
    {"key": "converted", "kind": "binary", "event": "purchase", "window_hours": 168},
    {"key": "revenue", "kind": "sum", "event": "purchase"},
    {"key": "revenue_30d", "kind": "sum", "source": "units", "column": "revenue_30d"},
    {"key": "converted_7d", "kind": "binary", "source": "units", "column": "conversions_7d"},
]


def _fill(path: Path, units: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(DUCKDB_DDL)
    start = "TIMESTAMPTZ '2024-03-01 00:00:00+00'"
    con.execute(
        f"""INSERT INTO exposures SELECT 'x' || i, 'bench', CASE WHEN i % 2 = 0 THEN 'control'
        ELSE 'b' END, 'u' || i, {start} + to_microseconds((hash(i) % 1209600000000)::BIGINT),
        '{{}}'::JSON, 'bench', NULL, now() FROM range({units}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO events SELECT 'e' || i, 'u' || (hash(i * 7) % {units}),
        CASE WHEN i % 15 = 0 THEN 'checkout_started' ELSE 'purchase' END,
        (hash(i) % 10000) / 100.0,
        {start} + to_microseconds((hash(i * 3) % 1814400000000)::BIGINT), '{{}}'::JSON,
        NULL, NULL, 'bench', now() FROM range({units * 5}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO unit_values SELECT 'u' || i, 'revenue_30d', (hash(i) % 5000) / 50.0,
        'bench', now() FROM range({units}) t(i)
        UNION ALL SELECT 'u' || i, 'conversions_7d', (hash(i * 5) % 3)::DOUBLE, 'bench', now()
        FROM range({units}) t(i)"""
    )
    con.close()


def _spec(secondary: list[str], trigger: dict[str, Any] | None = None) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "key": "bench",
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True},
                {"key": "b", "weight": 0.5},
            ],
            "metrics": {"primary": "converted", "secondary": secondary},
            "plan": {"trigger": trigger} if trigger else {},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    definitions = {m["key"]: MetricDefinition.model_validate(m) for m in METRICS}
    plans = {
        "events": build_plan(_spec(["revenue"]), definitions),
        "+ unit table": build_plan(_spec(["revenue", "revenue_30d", "converted_7d"]), definitions),
        "+ trigger": build_plan(_spec(["revenue"], {"event": "checkout_started"}), definitions),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        _fill(path, args.units)
        print(
            f"data: {args.units:,} units, {args.units * 5:,} events, {args.units * 2:,} unit "
            f"values ({time.perf_counter() - started:.1f} s to make)"
        )
        warehouse = Warehouse.open(f"duckdb:///{path}")
        try:
            watermark = warehouse.watermark()
            for name, plan in plans.items():
                times = []
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    run_analysis(warehouse=warehouse, plan=plan, watermark=watermark)
                    times.append(time.perf_counter() - began)
                print(
                    f"{name:<14} median {statistics.median(times) * 1000:7.0f} ms "
                    f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; "
                    f"{args.repeats} runs)"
                )
        finally:
            warehouse.close()


if __name__ == "__main__":
    main()

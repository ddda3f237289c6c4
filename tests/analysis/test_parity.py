"""The same query code on DuckDB and PostgreSQL gives the same numbers (to 1e-9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from splitlab.analysis import build_plan, run_analysis
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, generate, spec


def _analyse(url: str, dataset: Any) -> dict[str, Any]:
    warehouse = Warehouse.open(url)
    warehouse.start()
    try:
        dataset.write(warehouse, "checkout")
        plan = build_plan(
            spec(variants=("control", "b", "c"), segments=["country"], mde=0.1),
            {m.key: m for m in METRICS},
            top_n=2,
        )
        snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
        return snapshot.to_json()
    finally:
        warehouse.close()


def _numbers(entries: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for entry in entries:
        for name, value in sorted(entry.items()):
            out.append((f"{entry.get('metric')}/{entry.get('variant')}/{name}", value))
    return out


@pytest.mark.postgres
def test_duckdb_and_postgres_agree(tmp_path: Path, pg_schema_url: str) -> None:
    dataset = generate(seed=11, n_units=800, variants=("control", "b", "c"), lift=0.1)
    duck = _analyse(f"duckdb:///{tmp_path / 'w.duckdb'}", dataset)
    pg = _analyse(pg_schema_url, dataset)
    for part in ("results", "daily", "omnibus", "health"):
        left, right = _numbers(duck[part]), _numbers(pg[part])
        assert [k for k, _ in left] == [k for k, _ in right], part
        for (key, a), (_, b) in zip(left, right, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), key
            else:
                assert a == b, key
    assert duck["units"] == pg["units"]
    assert duck["days"] == pg["days"]

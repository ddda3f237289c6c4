"""A read-only source: a Parquet directory mapped onto the events/exposures schema."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from splitlab.errors import ConfigurationError
from splitlab.warehouse import SourceMapping, Warehouse, load_sources


def test_a_parquet_directory_replaces_the_native_tables(tmp_path: Path) -> None:
    lake = tmp_path / "lake" / "exposures"
    lake.mkdir(parents=True)
    for part in range(2):
        duckdb.sql(
            f"COPY (SELECT 'checkout' AS exp, CASE WHEN i % 2 = 0 THEN 'control' ELSE 'b' END "
            f"AS arm, 'u' || (i + {part * 10}) AS user_id, TIMESTAMPTZ '2024-01-02' AS ts "
            f"FROM range(10) r(i)) TO '{lake / f'part-{part}.parquet'}' (FORMAT parquet)"
        )
    config = tmp_path / "sources.json"
    config.write_text(
        json.dumps(
            {
                "exposures": {
                    "kind": "parquet",
                    "path": str(lake),
                    "columns": {
                        "experiment_key": "exp",
                        "variant_key": "arm",
                        "unit_id": "user_id",
                        "exposed_at": "ts",
                    },
                    "constants": {"source": "lake"},
                }
            }
        )
    )
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}", sources=load_sources(config))
    try:
        table = warehouse.exposures_table()
        assert "exposure_id" in table.columns and "ingested_at" in table.columns
        counts = table.group_by("variant_key").agg(n=table.count()).order_by("variant_key")
        assert counts.to_pyarrow().to_pylist() == [
            {"variant_key": "b", "n": 10},
            {"variant_key": "control", "n": 10},
        ]
        assert table.source.to_pyarrow().to_pylist()[0] == "lake"
        assert warehouse.events_table().count().execute() == 0  # still the native table
    finally:
        warehouse.close()


def test_a_mapping_must_cover_the_required_columns() -> None:
    with pytest.raises(ConfigurationError, match="unit_id"):
        SourceMapping(
            target="events",
            kind="parquet",
            path="/x",
            columns={"event_name": "n", "occurred_at": "t"},
        )

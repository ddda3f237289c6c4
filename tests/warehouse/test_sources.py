"""A read-only source: a Parquet directory mapped onto the events/exposures schema."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
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
        # the cache key follows the source: a new file changes it (results are recomputed)
        before = warehouse.watermark()
        assert (before.exposures, before.events) == (20, 0)
        assert before.last_ingested_at == datetime(2024, 1, 2, tzinfo=UTC)
        duckdb.sql(
            "COPY (SELECT 'checkout' AS exp, 'b' AS arm, 'u99' AS user_id, "
            f"TIMESTAMPTZ '2024-01-03' AS ts) TO '{lake / 'part-9.parquet'}' (FORMAT parquet)"
        )
        after = warehouse.watermark()
        assert after.exposures == 21 and after.cache_key() != before.cache_key()
        assert after.last_ingested_at == datetime(2024, 1, 3, tzinfo=UTC)
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


@pytest.mark.postgres
def test_a_postgresql_table_replaces_the_native_exposures(
    tmp_path: Path, pg_schema_url: str
) -> None:
    import psycopg

    from splitlab.warehouse.postgres import conninfo

    with psycopg.connect(conninfo(pg_schema_url), autocommit=True) as con:
        con.execute("CREATE TABLE ab_exposures (exp TEXT, arm TEXT, uid BIGINT, seen TIMESTAMPTZ)")
        con.execute(
            "INSERT INTO ab_exposures SELECT 'checkout', CASE WHEN i % 3 = 0 THEN 'b' ELSE "
            "'control' END, i, TIMESTAMPTZ '2024-01-02' FROM generate_series(1, 30) i"
        )
    mapping = SourceMapping(
        target="exposures",
        kind="table",
        url=conninfo(pg_schema_url).replace("postgresql://", "postgres://", 1),
        table="ab_exposures",
        columns={
            "experiment_key": "exp",
            "variant_key": "arm",
            "unit_id": "uid",
            "exposed_at": "seen",
        },
        constants={"source": "crm"},
    )
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}", sources={"exposures": mapping})
    try:
        table = warehouse.exposures_table()
        assert list(table.columns) == list(warehouse.ibis_connection().table("exposures").columns)
        counts = table.group_by("variant_key").agg(n=table.count()).order_by("variant_key")
        assert counts.to_pyarrow().to_pylist() == [
            {"variant_key": "b", "n": 10},
            {"variant_key": "control", "n": 20},
        ]
        assert table.unit_id.cast("int64").max().execute() == 30  # uid BIGINT became text
    finally:
        warehouse.close()


def test_an_ibis_table_of_the_warehouse_backend_replaces_events(tmp_path: Path) -> None:
    """``kind: ibis`` without a url: a table in the warehouse's own engine."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    setup = Warehouse.open(url)
    setup.close()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(
        "CREATE TABLE legacy (who VARCHAR, what VARCHAR, amount INTEGER, ts TIMESTAMPTZ); "
        "INSERT INTO legacy VALUES ('u1', 'buy', 5, '2024-01-02'), ('u2', 'buy', 7, '2024-01-03')"
    )
    con.close()
    mapping = SourceMapping(
        target="events",
        kind="ibis",
        table="legacy",
        columns={"unit_id": "who", "event_name": "what", "value": "amount", "occurred_at": "ts"},
    )
    warehouse = Warehouse.open(url, sources={"events": mapping})
    try:
        events = warehouse.events_table()
        assert events.value.sum().execute() == 12.0
        assert events.value.type().is_float64() and events.event_id.isnull().all().execute()
    finally:
        warehouse.close()


def test_a_source_url_is_connected_once_and_closed_with_the_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read of a source in another engine reuses one connection, from any thread."""
    import ibis

    from splitlab.warehouse import sources

    lake = tmp_path / "lake.duckdb"
    con = duckdb.connect(str(lake))
    con.execute(
        "CREATE TABLE seen AS SELECT 'checkout' AS exp, 'control' AS arm, 'u' || i AS uid, "
        "TIMESTAMPTZ '2024-01-02' AS ts FROM range(5) r(i)"
    )
    con.close()
    opened: list[ibis.BaseBackend] = []
    real_connect = ibis.connect

    def connect(url: str) -> ibis.BaseBackend:
        opened.append(real_connect(url))
        return opened[-1]

    monkeypatch.setattr(sources.ibis, "connect", connect)
    mapping = SourceMapping(
        target="exposures",
        kind="table",
        url=f"duckdb://{lake}",
        table="seen",
        columns={
            "experiment_key": "exp",
            "variant_key": "arm",
            "unit_id": "uid",
            "exposed_at": "ts",
        },
    )
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}", sources={"exposures": mapping})
    try:
        assert warehouse.exposures_table().count().execute() == 5
        assert warehouse.watermark().exposures == 5
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = list(
                pool.map(lambda _: warehouse.exposures_table().count().execute(), range(4))
            )
        assert counts == [5] * 4
        assert len(opened) == 1
    finally:
        warehouse.close()
    with pytest.raises(duckdb.ConnectionException):
        opened[0].raw_sql("SELECT 1")

"""The warehouse's Ibis connection: what the analysis may rely on without knowing the engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from ibis.common.exceptions import TableNotFound

from splitlab.warehouse import Warehouse, exposure_fact
from splitlab.warehouse.scratch import ScratchTables


def session_zone(warehouse: Warehouse) -> str:
    # DuckDB's raw_sql answers with the connection's own cursor: read it, do not close it
    return str(
        warehouse.ibis_connection().raw_sql("SELECT current_setting('TimeZone')").fetchone()[0]
    )


def test_every_thread_reads_in_utc(warehouse: Warehouse) -> None:
    """Day buckets cast TIMESTAMPTZ to dates: they are UTC days only in a UTC session."""
    assert session_zone(warehouse) == "UTC"
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(session_zone, warehouse).result() == "UTC"


def test_close_closes_every_threads_connection(warehouse_url: str) -> None:
    warehouse = Warehouse.open(warehouse_url)
    with ThreadPoolExecutor(max_workers=1) as pool:
        readers = [warehouse.ibis_connection(), pool.submit(warehouse.ibis_connection).result()]
    assert readers[0] is not readers[1]
    warehouse.close()
    for reader in readers:
        with pytest.raises(Exception, match=r"(?i)closed"):
            reader.raw_sql("SELECT 1")


def test_scratch_tables_number_the_units_and_are_dropped(warehouse: Warehouse) -> None:
    """Every engine gives the stored units distinct integer numbers 0 … n-1, and nothing the
    analysis stored outlives it, even when it fails."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    warehouse.write(
        [
            exposure_fact(
                experiment_key="checkout",
                variant_key="control" if i % 2 else "b",
                unit_id=f"u{i}",
                exposed_at=start,
            )
            for i in range(6)
        ]
    )
    con = warehouse.ibis_connection()
    with pytest.raises(RuntimeError, match="analysis failed"), ScratchTables(con) as scratch:
        units = scratch.units(
            warehouse.exposures_table(),
            warehouse.conflicts_table(),
            experiment_key="checkout",
            variants=("control", "b"),
            segments=(),
        )
        assert units.uid.nunique().execute() == 6 == units.count().execute()
        stored = scratch.store("values", units.select("uid", "variant"))
        assert stored.count().execute() == 6
        names = [f"{scratch.prefix}_units", f"{scratch.prefix}_values"]
        assert [con.table(name).count().execute() for name in names] == [6, 6]
        raise RuntimeError("analysis failed")
    for name in names:
        with pytest.raises(TableNotFound):
            con.table(name)

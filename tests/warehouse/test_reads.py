"""The warehouse's Ibis connection: what the analysis may rely on without knowing the engine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from splitlab.warehouse import Warehouse


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

"""Analysis fixtures: a warehouse on DuckDB and, when reachable, PostgreSQL (fresh schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from splitlab.warehouse import Warehouse


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    opened = Warehouse.open(warehouse_url)
    opened.start()
    yield opened
    opened.close()

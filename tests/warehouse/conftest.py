"""Warehouse fixtures: every warehouse test runs on DuckDB and, when reachable, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from splitlab.domain import Status
from splitlab.warehouse import ExperimentSummary, Warehouse

START = datetime(2024, 1, 1, tzinfo=UTC)
RUNNING = ExperimentSummary("checkout", Status.RUNNING, frozenset({"control", "b"}), START)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A DuckDB file in a temporary directory, or a fresh PostgreSQL schema."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    opened = Warehouse.open(warehouse_url)
    yield opened
    opened.close()


def lookup(key: str) -> ExperimentSummary | None:
    return {"checkout": RUNNING}.get(key)

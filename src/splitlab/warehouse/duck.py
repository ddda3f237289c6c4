"""DuckDB writes: Arrow staging tables, ``INSERT … ON CONFLICT DO NOTHING RETURNING``.

One ``DuckDBBackend`` is used by the writer thread only; the primary keys plus the single
writer make deduplication atomic. Timestamps travel as UTC microseconds in Arrow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from splitlab.warehouse.facts import Fact
from splitlab.warehouse.schema import DUCKDB_DDL, SCHEMA_VERSION
from splitlab.warehouse.validation import from_us

UTC_US = pa.timestamp("us", tz="UTC")


def timestamps(values: Sequence[int]) -> pa.Array:
    return pa.array(values, pa.int64()).cast(UTC_US)


def _columns(facts: Sequence[Fact]) -> list[tuple[Any, ...]]:
    return list(zip(*facts, strict=True))


class DuckDBBackend:
    """The write side of a DuckDB warehouse (one connection, one thread)."""

    dialect = "duckdb"

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.con = connection

    def ensure_schema(self) -> None:
        self.con.execute(DUCKDB_DDL)
        self.con.execute(
            "INSERT INTO warehouse_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
            [str(SCHEMA_VERSION)],
        )

    def begin(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(duckdb.Error):  # no transaction open: it failed before BEGIN
            self.con.execute("ROLLBACK")

    def _insert(self, table: pa.Table, sql: str, ingested_us: int) -> set[str]:
        self.con.register("splitlab_stage", table)
        try:
            rows = self.con.execute(sql, [from_us(ingested_us)]).fetchall()
            return {row[0] for row in rows}
        finally:
            self.con.unregister("splitlab_stage")

    def insert_events(self, facts: Sequence[Fact], ingested_us: int) -> set[str]:
        if not facts:
            return set()
        cols = _columns(facts)
        table = pa.table(
            {
                "event_id": pa.array(cols[1], pa.string()),
                "unit_id": pa.array(cols[5], pa.string()),
                "event_name": pa.array(cols[6], pa.string()),
                "value": pa.array(cols[7], pa.float64()),
                "occurred_at": timestamps(cols[8]),
                "properties": pa.array(cols[9], pa.string()),
                "experiment_key": pa.array(cols[3], pa.string()),
                "variant_key": pa.array(cols[4], pa.string()),
                "source": pa.array(cols[10], pa.string()),
            }
        )
        return self._insert(
            table,
            "INSERT INTO events SELECT s.*, ?::TIMESTAMPTZ FROM splitlab_stage s "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            ingested_us,
        )

    def insert_exposures(self, facts: Sequence[Fact], ingested_us: int) -> set[str]:
        if not facts:
            return set()
        cols = _columns(facts)
        table = pa.table(
            {
                "exposure_id": pa.array(cols[1], pa.string()),
                "experiment_key": pa.array(cols[3], pa.string()),
                "variant_key": pa.array(cols[4], pa.string()),
                "unit_id": pa.array(cols[5], pa.string()),
                "exposed_at": timestamps(cols[8]),
                "attributes": pa.array(cols[9], pa.string()),
                "source": pa.array(cols[10], pa.string()),
                "event_id": pa.array(cols[2], pa.string()),
            }
        )
        return self._insert(
            table,
            "INSERT INTO exposures SELECT s.*, ?::TIMESTAMPTZ FROM splitlab_stage s "
            "ON CONFLICT DO NOTHING RETURNING exposure_id",
            ingested_us,
        )

    def exposure_variants(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        self.con.register("splitlab_keys", pa.table({"k": pa.array(keys, pa.string())}))
        try:
            rows = self.con.execute(
                "SELECT e.exposure_id, e.variant_key FROM splitlab_keys k "
                "JOIN exposures e ON e.exposure_id = k.k"
            ).fetchall()
        finally:
            self.con.unregister("splitlab_keys")
        return dict(rows)

    def insert_conflicts(
        self, conflicts: Sequence[tuple[str, Fact, str]], ingested_us: int
    ) -> set[str]:
        if not conflicts:
            return set()
        table = pa.table(
            {
                "conflict_id": [c[0] for c in conflicts],
                "experiment_key": [c[1].experiment_key for c in conflicts],
                "unit_id": [c[1].unit_id for c in conflicts],
                "variant_key": [c[1].variant_key for c in conflicts],
                "first_variant_key": [c[2] for c in conflicts],
                "occurred_at": timestamps([c[1].occurred_us for c in conflicts]),
                "event_id": [c[1].event_id for c in conflicts],
                "source": [c[1].source for c in conflicts],
            }
        )
        return self._insert(
            table,
            "INSERT INTO exposure_conflicts SELECT s.*, ?::TIMESTAMPTZ FROM splitlab_stage s "
            "ON CONFLICT DO NOTHING RETURNING conflict_id",
            ingested_us,
        )

    def close(self) -> None:
        self.con.close()

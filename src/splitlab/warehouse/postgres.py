"""PostgreSQL writes: ``COPY`` into temp tables, ``INSERT … ON CONFLICT DO NOTHING RETURNING``
(group commits), or plain ``ON CONFLICT DO NOTHING`` with row counts (bulk imports).

Timestamps travel as epoch microseconds and become ``timestamptz`` in SQL
(``'epoch' + us * interval '1 microsecond'``), exactly, without float rounding.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from splitlab.warehouse.facts import Fact
from splitlab.warehouse.schema import IMPORT_CONFLICTS, POSTGRES_DDL, SCHEMA_VERSION

STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_events (
    event_id TEXT, unit_id TEXT, event_name TEXT, value DOUBLE PRECISION, occurred_us BIGINT,
    properties TEXT, experiment_key TEXT, variant_key TEXT, source TEXT
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_exposures (
    exposure_id TEXT, experiment_key TEXT, variant_key TEXT, unit_id TEXT, exposed_us BIGINT,
    attributes TEXT, source TEXT, event_id TEXT
) ON COMMIT DELETE ROWS;
"""
US = "(timestamptz 'epoch' + {} * interval '1 microsecond')"

IMPORT_INSERT = {
    "events": "INSERT INTO events SELECT key, unit_id, event_name, value, "
    f"{US.format('occurred_us')}, properties::jsonb, experiment_key, variant_key, 'import', "
    f"{US.format('%(ingested)s')} FROM import_stage ORDER BY row_number "
    "ON CONFLICT DO NOTHING",
    "exposures": "INSERT INTO exposures SELECT key, experiment_key, variant_key, unit_id, "
    f"{US.format('occurred_us')}, properties::jsonb, 'import', event_id, "
    f"{US.format('%(ingested)s')} FROM import_stage ORDER BY row_number "
    "ON CONFLICT DO NOTHING",
}
"""Append staged import rows: the first row of each key wins (rows go in file order, and
``ON CONFLICT DO NOTHING`` also skips a key repeated within the statement)."""
CONFLICTS = IMPORT_CONFLICTS.format(
    stage="import_stage", occurred=US.format("s.occurred_us"), ingested=US.format("%(ingested)s")
)


def conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy-style one (``postgresql+psycopg://`` → ``postgresql://``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((scheme, *parts[1:]))


class PostgresBackend:
    """The write side of a PostgreSQL warehouse (one connection, one thread)."""

    dialect = "postgres"
    # ON CONFLICT is cheap here: every group is written the checked way
    key_exists: type[Exception] | None = None
    assume_new = False
    autocommit = False

    def __init__(self, url: str) -> None:
        self.con = psycopg.connect(conninfo(url), autocommit=False)
        with self.con.cursor() as cur:
            cur.execute(STAGING)
        self.con.commit()

    def ensure_schema(self) -> None:
        with self.con.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(74700001)")  # concurrent first starts
            cur.execute(POSTGRES_DDL)
            cur.execute(
                "INSERT INTO warehouse_meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                [str(SCHEMA_VERSION)],
            )
        self.con.commit()

    def begin(self) -> None:
        """psycopg opens the transaction on the first statement."""

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def _copy(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        with (
            self.con.cursor() as cur,
            cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def _returning(self, sql: str, ingested_us: int) -> set[str]:
        with self.con.cursor() as cur:
            cur.execute(sql, {"ingested": ingested_us})
            return {row[0] for row in cur.fetchall()}

    def insert_events(self, facts: Sequence[Fact], ingested_us: int) -> set[str]:
        if not facts:
            return set()
        self._copy(
            "stage_events",
            "event_id, unit_id, event_name, value, occurred_us, properties, experiment_key, "
            "variant_key, source",
            [(f[1], f[5], f[6], f[7], f[8], f[9], f[3], f[4], f[10]) for f in facts],
        )
        return self._returning(
            "INSERT INTO events SELECT event_id, unit_id, event_name, value, "
            f"{US.format('occurred_us')}, properties::jsonb, experiment_key, variant_key, "
            f"source, {US.format('%(ingested)s')} FROM stage_events "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            ingested_us,
        )

    def insert_exposures(self, facts: Sequence[Fact], ingested_us: int) -> set[str]:
        if not facts:
            return set()
        self._copy(
            "stage_exposures",
            "exposure_id, experiment_key, variant_key, unit_id, exposed_us, attributes, source, "
            "event_id",
            [(f[1], f[3], f[4], f[5], f[8], f[9], f[10], f[2]) for f in facts],
        )
        return self._returning(
            "INSERT INTO exposures SELECT exposure_id, experiment_key, variant_key, unit_id, "
            f"{US.format('exposed_us')}, attributes::jsonb, source, event_id, "
            f"{US.format('%(ingested)s')} FROM stage_exposures "
            "ON CONFLICT DO NOTHING RETURNING exposure_id",
            ingested_us,
        )

    def import_rows(
        self, kind: str, columns: str, batches: Iterable[pa.RecordBatch], ingested_us: int
    ) -> tuple[int, int]:
        """Append validated import rows inside the current transaction; (accepted, conflicts).

        The batches (``columns`` is their SQL layout) stream into a temporary table with
        ``COPY … (FORMAT csv)`` written by Arrow, then one ``INSERT … SELECT`` per table does
        the dedup — no Python per row, and no keys travel back.
        """
        options = pacsv.WriteOptions(include_header=False)
        with self.con.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE import_stage ({columns}) ON COMMIT DROP")
            with cur.copy("COPY import_stage FROM STDIN (FORMAT csv)") as copy:
                for batch in batches:
                    sink = io.BytesIO()
                    pacsv.write_csv(batch, sink, options)
                    copy.write(sink.getbuffer())
            cur.execute(IMPORT_INSERT[kind], {"ingested": ingested_us})
            accepted = cur.rowcount
            conflicts = 0
            if kind == "exposures":
                cur.execute(CONFLICTS, {"ingested": ingested_us})
                conflicts = cur.rowcount
        return accepted, conflicts

    def exposure_variants(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        with self.con.cursor() as cur:
            cur.execute(
                "SELECT exposure_id, variant_key FROM exposures WHERE exposure_id = ANY(%s)",
                [list(keys)],
            )
            return dict(cur.fetchall())

    def insert_conflicts(
        self, conflicts: Sequence[tuple[str, Fact, str]], ingested_us: int
    ) -> set[str]:
        if not conflicts:
            return set()
        inserted: set[str] = set()
        with self.con.cursor() as cur:
            for conflict_id, fact, first_variant in conflicts:
                cur.execute(
                    "INSERT INTO exposure_conflicts VALUES (%s, %s, %s, %s, %s, "
                    f"{US.format('%s')}, %s, %s, {US.format('%s')}) "
                    "ON CONFLICT DO NOTHING RETURNING conflict_id",
                    [
                        conflict_id,
                        fact.experiment_key,
                        fact.unit_id,
                        fact.variant_key,
                        first_variant,
                        fact.occurred_us,
                        fact.event_id,
                        fact.source,
                        ingested_us,
                    ],
                )
                inserted.update(row[0] for row in cur.fetchall())
        return inserted

    def close(self) -> None:
        self.con.close()

"""The warehouse tables, in the two SQL dialects we write to (DuckDB and PostgreSQL).

* ``exposures`` — one row per (experiment, unit): ``exposure_id = derive_id(experiment, unit)``.
* ``exposure_conflicts`` — a unit seen again in another variant; analysis excludes the unit.
* ``events`` — metric events, keyed by ``event_id``; not tied to one experiment
  (``experiment_key``/``variant_key`` keep what the client sent, for provenance only).

Every row carries ``source`` (api, import, simulator, …) and ``ingested_at`` (commit time),
which is what the data watermark is made of.

**Dedup keys.** On PostgreSQL the keys are primary keys. On DuckDB (schema version 2) they are
``UNIQUE`` indexes instead (``KEY_INDEXES``), which enforce exactly the same rule for every
write and ``ON CONFLICT`` — but, unlike a primary key, can be dropped and rebuilt. A bulk
import that is large next to the table drops the index, inserts the rows anti-joined against
the table, and builds the index again in bulk, all in one transaction on the single writer
thread: an ART index built in bulk costs ~0.2 µs a row, inserting into it row by row
~1–5 µs, and the rebuild fails (rolling the whole import back) if a key were ever repeated.
A version 1 file (primary keys) keeps working; its imports insert incrementally.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
"""1: DuckDB keys were primary keys; 2: DuckDB keys are unique indexes (PostgreSQL unchanged)."""

TABLES = ("exposures", "exposure_conflicts", "events")

_TEMPLATE = """
CREATE TABLE IF NOT EXISTS exposures (
    exposure_id {text}{key},
    experiment_key {text} NOT NULL,
    variant_key {text} NOT NULL,
    unit_id {text} NOT NULL,
    exposed_at TIMESTAMPTZ NOT NULL,
    attributes {json},
    source {text} NOT NULL,
    event_id {text},
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS exposure_conflicts (
    conflict_id {text}{key},
    experiment_key {text} NOT NULL,
    unit_id {text} NOT NULL,
    variant_key {text} NOT NULL,
    first_variant_key {text} NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    event_id {text},
    source {text} NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id {text}{key},
    unit_id {text} NOT NULL,
    event_name {text} NOT NULL,
    value {double},
    occurred_at TIMESTAMPTZ NOT NULL,
    properties {json},
    experiment_key {text},
    variant_key {text},
    source {text} NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS warehouse_meta (
    name {text} PRIMARY KEY,
    value {text} NOT NULL
);
"""

KEY_INDEXES = {
    "exposures": ("exposures_key", "exposure_id"),
    "exposure_conflicts": ("exposure_conflicts_key", "conflict_id"),
    "events": ("events_key", "event_id"),
}
"""DuckDB: table → (unique index, key column)."""


def key_index_ddl(table: str) -> str:
    """``CREATE UNIQUE INDEX`` for a DuckDB table's dedup key."""
    index, column = KEY_INDEXES[table]
    return f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({column})"


DUCKDB_DDL = _TEMPLATE.format(text="VARCHAR", json="JSON", double="DOUBLE", key=" NOT NULL")
"""The DuckDB tables; ``DuckDBBackend.ensure_schema`` adds the ``KEY_INDEXES``."""

POSTGRES_DDL = (
    _TEMPLATE.format(text="TEXT", json="JSONB", double="DOUBLE PRECISION", key=" PRIMARY KEY")
    + """
CREATE INDEX IF NOT EXISTS exposures_experiment ON exposures (experiment_key, variant_key);
CREATE INDEX IF NOT EXISTS events_name_unit ON events (event_name, unit_id);
CREATE INDEX IF NOT EXISTS exposure_conflicts_experiment ON exposure_conflicts (experiment_key);
"""
)

EXPOSURE_COLUMNS = (
    "exposure_id",
    "experiment_key",
    "variant_key",
    "unit_id",
    "exposed_at",
    "attributes",
    "source",
    "event_id",
    "ingested_at",
)
EVENT_COLUMNS = (
    "event_id",
    "unit_id",
    "event_name",
    "value",
    "occurred_at",
    "properties",
    "experiment_key",
    "variant_key",
    "source",
    "ingested_at",
)
CONFLICT_COLUMNS = (
    "conflict_id",
    "experiment_key",
    "unit_id",
    "variant_key",
    "first_variant_key",
    "occurred_at",
    "event_id",
    "source",
    "ingested_at",
)

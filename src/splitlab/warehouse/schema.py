"""The warehouse tables, in the two SQL dialects we write to (DuckDB and PostgreSQL).

* ``exposures`` — one row per (experiment, unit): ``exposure_id = derive_id(experiment, unit)``.
* ``exposure_conflicts`` — a unit seen again in another variant; analysis excludes the unit.
* ``events`` — metric events, keyed by ``event_id``; not tied to one experiment
  (``experiment_key``/``variant_key`` keep what the client sent, for provenance only).
* ``unit_values`` — per-unit outcomes and attributes without timestamps (``revenue_30d``
  of a unit), one row per (unit, column name), not tied to an experiment; a new import of a
  column replaces its value (``warehouse.unit_tables``); ``unit_attributes`` the same for
  text columns (``plan_name`` of a unit), which ``plan.unit_segments`` break results down by.

Every row carries ``source`` (api, import, simulator, …) and ``ingested_at`` (commit time),
which is what the data watermark is made of.

The dedup keys are primary keys on both engines. Measured and rejected for DuckDB 2.0: a
``UNIQUE`` index that a bulk import drops and rebuilds. Inside one transaction a dropped
index is still maintained for that transaction's appends (no gain), and committing the drop
first would let an import that fails half-way leave the table without its dedup rule.
Bulk imports instead skip the index work they can (see ``importer._write``).
"""

from __future__ import annotations

SCHEMA_VERSION = 1

_TEMPLATE = """
CREATE TABLE IF NOT EXISTS exposures (
    exposure_id {text} PRIMARY KEY,
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
    conflict_id {text} PRIMARY KEY,
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
    event_id {text} PRIMARY KEY,
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
CREATE TABLE IF NOT EXISTS unit_values (
    unit_id {text} NOT NULL,
    name {text} NOT NULL,
    value {double} NOT NULL,
    source {text} NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (unit_id, name)
);
CREATE TABLE IF NOT EXISTS unit_attributes (
    unit_id {text} NOT NULL,
    name {text} NOT NULL,
    text {text} NOT NULL,
    source {text} NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (unit_id, name)
);
CREATE TABLE IF NOT EXISTS warehouse_meta (
    name {text} PRIMARY KEY,
    value {text} NOT NULL
);
"""

DUCKDB_DDL = _TEMPLATE.format(text="VARCHAR", json="JSON", double="DOUBLE")

POSTGRES_DDL = (
    _TEMPLATE.format(text="TEXT", json="JSONB", double="DOUBLE PRECISION")
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

IMPORT_CONFLICTS = """
INSERT INTO exposure_conflicts
SELECT DISTINCT ON (conflict_id) conflict_id, s.experiment_key, s.unit_id, s.variant_key,
       x.variant_key, {occurred}, s.event_id, 'import', {ingested}
FROM (SELECT md5(concat_ws(chr(31), experiment_key, unit_id, variant_key)) AS conflict_id, *
      FROM {stage}) s
JOIN exposures x ON x.exposure_id = s.key
WHERE s.variant_key <> x.variant_key
ORDER BY conflict_id, s.row_number
ON CONFLICT DO NOTHING"""
"""A bulk import's exposures whose unit is stored with another variant, in either dialect:
``writer.write_group``'s rule in SQL (the first such row of the file per conflict wins; the
conflict id is ``facts.derive_id(experiment, unit, variant)``). ``stage`` holds the valid
rows with ``row_number``, ``key`` (the exposure id) and ``event_id``; ``occurred`` and
``ingested`` are SQL for the two times."""

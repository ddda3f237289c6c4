"""Bulk import of CSV, Parquet and JSON Lines files with DuckDB's native readers.

Columns named as in ``/api/track`` (``experimentKey``, ``variantKey``, ``userKey``,
``eventType``, ``value``, ``eventId``, ``occurredAt``, ``props``) are taken as they are;
others are renamed through a mapping (``{"user_id": "userKey"}``). Every row is validated in
SQL by the same rules as the API (vectorised, no Python per row); rejected rows are counted
per reason with example row numbers. Valid rows go in with the same dedup keys
(``splitlab.ids``, in SQL by ``facts.event_id_sql``), in one transaction; exposures of a
unit already exposed to another variant are recorded in ``exposure_conflicts``, as the
writer does.

Writing events on DuckDB (``_write``): when the import is large next to the table
(``BULK_RATIO``) the rows are first appended anti-joined against the table but without an
in-file dedup — file ids are normally unique, and the window that keeps the first row per id
costs more than the rest of the insert. A repeated id then violates the primary key: the
transaction is rolled back and the import runs again with the dedup. Either way it is one
transaction on the writer thread, so nothing interleaves and a crash leaves nothing.

Where the time goes (10M Parquet rows, 2 cores; ``bench_ingest.py --import-floor``): DuckDB
alone copies the rows to a new Parquet file in ~2.5 s, validates them in ~2.6 s, inserts
them into an events table without a key in ~5 s and into the real one, keyed by
``event_id`` (the index that makes every later write exactly-once), in ~11.7 s. The import
(~14 s with process start-up) is that last figure plus validation; a faster bulk path would
need a second storage layout without a per-row index (e.g. imports kept as validated Parquet
files deduplicated by a hash anti-join, the API path checking them through a key filter).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from splitlab import ids
from splitlab.domain.summary import ExperimentSummary
from splitlab.errors import ValidationError
from splitlab.warehouse.facts import Fact, Kind, event_id_sql, exposure_id_sql
from splitlab.warehouse.rules import CLOCK_SKEW
from splitlab.warehouse.rules_sql import HELPER_COLUMNS, INTEGERS, validated_sql
from splitlab.warehouse.schema import IMPORT_CONFLICTS

TRACK_COLUMNS = (
    "experimentKey",
    "variantKey",
    "userKey",
    "eventType",
    "value",
    "eventId",
    "occurredAt",
    "props",
)
ALIASES = {"experimentId": "experimentKey", "variantId": "variantKey", "properties": "props"}
KINDS = ("events", "exposures")
BULK_RATIO = 0.25
"""Append events optimistically when they are at least this share of the table's rows."""
KEYS = {"exposures": "exposure_id", "events": "event_id"}


@dataclass
class ImportReport:
    kind: str
    file: str
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    """Exposures of a unit already exposed to another variant (recorded as conflicts)."""
    reasons: list[dict[str, Any]] = field(default_factory=list)
    columns: list[dict[str, str]] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)
    written: bool = False
    dedup: bool = field(default=False, repr=False)
    """Internal: deduplicate inside the file before a bulk append."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "dedup"}


ROW_NUMBER = "splitlab_row_number"
"""The file's 1-based row number, added to the source by ``reader_sql``."""


def reader_sql(path: Path) -> tuple[str, str]:
    """The DuckDB table function that reads ``path`` (by its suffix), and the SQL of a row's
    1-based number in the file.

    A single Parquet file numbers its rows as it reads them (``file_row_number``, parallel);
    other sources number them with a window over the scan, which makes DuckDB hold every
    row first (measured on 10M Parquet rows: validation 2.5 s instead of 4.8 s).
    """
    name = str(path).replace("'", "''")
    suffix = "".join(path.suffixes[-2:]).lower()
    if path.is_dir():
        return f"read_parquet('{name}/**/*.parquet')", "row_number() OVER ()"
    if suffix.endswith(".parquet"):
        return f"read_parquet('{name}', file_row_number = true)", "file_row_number + 1"
    if suffix.endswith((".csv", ".csv.gz", ".tsv")):
        return f"read_csv('{name}', auto_detect = true, header = true)", "row_number() OVER ()"
    if suffix.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return f"read_json('{name}', format = 'newline_delimited')", "row_number() OVER ()"
    raise ValidationError(
        f"file: cannot tell the format of {path.name}; use .csv, .parquet or .jsonl",
        details=[{"loc": ["file"], "msg": "unknown format"}],
    )


def _as_sent(source: str, described: list[Any]) -> str:
    """``read_json`` again with each column typed so that no value changes on the way: the
    types DuckDB infers merge an integer into a DOUBLE column (``1`` reads as ``1.0``), pad
    each object of a STRUCT column with the keys of the others (as nulls) and read text that
    looks like a date as one. Those columns are read as JSON, dates and times as text."""
    columns = []
    for name, kind, *_ in described:
        kind = str(kind).upper()
        if kind.startswith(("DATE", "TIME")):
            kind = "VARCHAR"
        elif kind not in ("VARCHAR", "BOOLEAN", *INTEGERS):
            kind = "JSON"
        columns.append(f"'{name.replace(chr(39), chr(39) * 2)}': '{kind}'")
    return f"{source[:-1]}, columns = {{{', '.join(columns)}}})"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mapped_columns(con: duckdb.DuckDBPyConnection, source: str, mapping: Mapping[str, str]) -> str:
    """``SELECT`` list renaming the file's columns to the track names; missing ones NULL."""
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    names = [row[0] for row in described]
    unknown_targets = sorted(set(mapping.values()) - set(TRACK_COLUMNS) - set(ALIASES))
    if unknown_targets:
        raise ValidationError(
            f"map: unknown target column(s) {', '.join(unknown_targets)}; "
            f"use {', '.join(TRACK_COLUMNS)}",
            details=[{"loc": ["map"], "msg": "unknown target"}],
        )
    missing_sources = sorted(set(mapping) - set(names))
    if missing_sources:
        raise ValidationError(
            f"map: the file has no column(s) {', '.join(missing_sources)}",
            details=[{"loc": ["map"], "msg": "unknown source column"}],
        )
    chosen: dict[str, str] = {}
    for name in names:
        target = mapping.get(name, name)
        target = ALIASES.get(target, target)
        if target in TRACK_COLUMNS and target not in chosen:
            chosen[target] = name
    parts = []
    for target in TRACK_COLUMNS:
        if target in chosen:
            parts.append(f"{_quote(chosen[target])} AS {_quote(target)}")
        else:
            parts.append(f"NULL AS {_quote(target)}")
    return ", ".join(parts)


def _before(moment: datetime | None, span: timedelta) -> datetime | None:
    """``moment - span``, or the earliest datetime when that is before year 1 (a start date
    stored before such dates were refused must not break every import)."""
    if moment is None:
        return None
    try:
        return moment - span
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _experiments_table(experiments: Mapping[str, ExperimentSummary]) -> pa.Table:
    rows = list(experiments.values())
    return pa.table(
        {
            "key": pa.array([e.key for e in rows], pa.string()),
            "accepting": pa.array([e.accepting for e in rows], pa.bool_()),
            "status": pa.array([str(e.status) for e in rows], pa.string()),
            "variants": pa.array([sorted(e.variants) for e in rows], pa.list_(pa.string())),
            "exposure_from": pa.array(
                [_before(e.start_at, CLOCK_SKEW) for e in rows], pa.timestamp("us", tz="UTC")
            ),
            "event_from": pa.array(
                [_before(e.start_at, e.pre_period) for e in rows], pa.timestamp("us", tz="UTC")
            ),
        }
    )


KEY_SQL = {
    "exposures": exposure_id_sql("experiment_key", "unit_id"),
    "events": event_id_sql("experiment_key", "unit_id", "event_name", "client_id"),
}
"""The dedup key of a staged row (``ids.fact_key``); ``event_name`` is 'exposure' for
exposures."""
EXPOSURE_EVENT_ID_SQL = KEY_SQL["events"]
"""An exposure's event id: the client's, else ``ids.event_id(experiment, unit, 'exposure')``."""
SELECT_SQL = {
    "exposures": "key, experiment_key, variant_key, unit_id, occurred_at, properties, 'import', "
    f"{EXPOSURE_EVENT_ID_SQL}, now()",
    "events": """key, unit_id, event_name, value, occurred_at, properties, experiment_key,
        variant_key, 'import', now()""",
}
CONFLICTS_SQL = IMPORT_CONFLICTS.format(
    stage=f"(SELECT *, {EXPOSURE_EVENT_ID_SQL} AS event_id FROM splitlab_import_keyed)",
    occurred="s.occurred_at",
    ingested="now()",
)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def _insert(con: duckdb.DuckDBPyConnection, table: str, *, dedup: bool) -> None:
    """Append the valid rows that are new to ``table``; with ``dedup``, only the first row of
    each key (otherwise a repeated key raises ``duckdb.ConstraintException``).

    Keys already stored are left out by an anti-join, not ``ON CONFLICT DO NOTHING``: the
    import is the only writer in its transaction, so nothing can conflict, and DuckDB's
    conflict-checking insert cost ~25% more (1M exposures: 9.9 against 7.4 CPU-s)."""
    new = f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{KEYS[table]} = v.key)"
    first = "QUALIFY row_number() OVER (PARTITION BY key ORDER BY row_number) = 1"
    con.execute(
        f"INSERT INTO {table} SELECT {SELECT_SQL[table]} FROM splitlab_import_keyed v "
        f"{new} {first if dedup else ''}"
    )


def _write(con: duckdb.DuckDBPyConnection, kind: str, report: ImportReport) -> bool:
    """Insert the staged rows; False when the optimistic append met a key repeated inside
    the file and the caller must roll back and run again with ``report.dedup``."""
    con.execute(
        "CREATE OR REPLACE TEMP VIEW splitlab_import_keyed AS "
        f"SELECT {KEY_SQL[kind]} AS key, * FROM splitlab_import_valid"
    )
    valid = report.rows - report.rejected
    before = _count(con, kind)
    # exposures repeat per unit as a rule; event ids are normally unique
    dedup = kind == "exposures" or report.dedup or valid < BULK_RATIO * before
    try:
        _insert(con, kind, dedup=dedup)
    except duckdb.ConstraintException:
        if dedup:
            raise
        return False
    report.accepted = _count(con, kind) - before
    # every valid row stored: no unit repeated in the file or stored before, so no conflict
    if kind == "exposures" and report.accepted < valid:
        conflicts_before = _count(con, "exposure_conflicts")
        con.execute(CONFLICTS_SQL)
        report.conflicts = _count(con, "exposure_conflicts") - conflicts_before
    report.duplicates = valid - report.accepted - report.conflicts
    return True


def _stage(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    kind: str,
    experiments: Mapping[str, ExperimentSummary],
    mapping: Mapping[str, str],
    report: ImportReport,
    preview_rows: int,
) -> None:
    source, numbering = reader_sql(path)
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    report.columns = [
        {"name": row[0], "type": str(row[1])} for row in described if row[0] != "file_row_number"
    ]
    if source.startswith("read_json("):
        source = _as_sent(source, described)
    select = _mapped_columns(con, source, mapping)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW splitlab_import_src AS "
        f"SELECT {numbering} AS {ROW_NUMBER}, {select} FROM {source}"
    )
    con.register("splitlab_import_experiments", _experiments_table(experiments))
    types = {row[0]: str(row[1]) for row in con.execute("DESCRIBE splitlab_import_src").fetchall()}
    checked = validated_sql(kind, types, ROW_NUMBER)
    con.execute(f"CREATE OR REPLACE TEMP TABLE splitlab_import_checked AS {checked}")
    report.rows, report.rejected = con.execute(
        "SELECT count(*), count(err) FROM splitlab_import_checked"
    ).fetchall()[0]
    reasons = con.execute(
        "SELECT err, count(*), list(row_number ORDER BY row_number)[1:5] "
        "FROM splitlab_import_checked WHERE err IS NOT NULL GROUP BY err ORDER BY 2 DESC"
    ).fetchall()
    report.reasons = [{"reason": r[0], "rows": r[1], "examples": r[2]} for r in reasons]
    if preview_rows:
        cursor = con.execute(
            f"SELECT * EXCLUDE ({', '.join(HELPER_COLUMNS)}, occurred_at), "
            "CAST(occurred_at AS VARCHAR) AS occurred_at FROM splitlab_import_checked "
            f"ORDER BY row_number LIMIT {int(preview_rows)}"
        )
        names = [d[0] for d in cursor.description]
        report.preview = [
            {
                k: (v if isinstance(v, int | float | str | None) else str(v))
                for k, v in zip(names, row, strict=True)
            }
            for row in cursor.fetchall()
        ]
    con.execute(
        "CREATE OR REPLACE TEMP VIEW splitlab_import_valid AS "
        "SELECT * FROM splitlab_import_checked WHERE err IS NULL"
    )


def import_into_duckdb(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    kind: str,
    experiments: Mapping[str, ExperimentSummary],
    mapping: Mapping[str, str] | None = None,
    write: bool = True,
    preview_rows: int = 0,
) -> ImportReport:
    """Validate (and, with ``write``, insert) a file on a DuckDB warehouse connection,
    inside the caller's transaction."""
    if kind not in KINDS:
        raise ValidationError(f"kind: use one of {', '.join(KINDS)}")
    report = ImportReport(kind=kind, file=str(path))
    _stage(con, path, kind, experiments, mapping or {}, report, preview_rows)
    if write and not _write(con, kind, report):
        # a key repeated inside the file: start the transaction again, deduplicating
        con.execute("ROLLBACK")
        con.execute("BEGIN TRANSACTION")
        report = ImportReport(kind=kind, file=str(path), dedup=True)
        _stage(con, path, kind, experiments, mapping or {}, report, preview_rows)
        _write(con, kind, report)
    report.written = write
    con.unregister("splitlab_import_experiments")
    return report


STAGE_COLUMNS = (
    "row_number BIGINT, key TEXT, event_id TEXT, experiment_key TEXT, variant_key TEXT, "
    "unit_id TEXT, event_name TEXT, value DOUBLE PRECISION, occurred_us BIGINT, properties TEXT"
)
"""The layout in which validated rows leave DuckDB for another warehouse (``valid_batches``)."""


def valid_batches(
    con: duckdb.DuckDBPyConnection, kind: str, rows_per_batch: int = 200_000
) -> pa.RecordBatchReader:
    """The valid staged rows in the ``STAGE_COLUMNS`` layout, in file order, as Arrow batches:
    the dedup ``key`` (and an exposure's ``event_id``) computed as ``splitlab.ids`` does."""
    event_id = EXPOSURE_EVENT_ID_SQL if kind == "exposures" else "NULL"
    return con.sql(
        f"SELECT row_number, {KEY_SQL[kind]} AS key, {event_id} AS event_id, experiment_key, "
        "variant_key, unit_id, event_name, value, epoch_us(occurred_at) AS occurred_us, "
        "CAST(properties AS VARCHAR) AS properties "
        "FROM splitlab_import_valid ORDER BY row_number"
    ).to_arrow_reader(rows_per_batch)


def valid_facts(
    con: duckdb.DuckDBPyConnection, kind: str, chunk: int = 10_000
) -> Iterator[list[Fact]]:
    """The valid staged rows as ``Fact`` chunks (for warehouses other than DuckDB)."""
    exposure = kind == "exposures"
    cursor = con.execute(
        "SELECT experiment_key, variant_key, unit_id, event_name, value, client_id, "
        "epoch_us(occurred_at), CAST(properties AS VARCHAR) "
        "FROM splitlab_import_valid ORDER BY row_number"
    )
    while rows := cursor.fetchmany(chunk):
        facts = []
        for exp, var, unit, name, value, client_id, occurred, props in rows:
            event_id = ids.event_id(exp, unit, name, client_id)
            key = ids.exposure_id(exp, unit) if exposure else event_id
            facts.append(
                Fact(
                    Kind.EXPOSURE if exposure else Kind.EVENT,
                    key,
                    event_id,
                    exp,
                    var,
                    unit,
                    name,
                    value,
                    occurred,
                    props,
                    "import",
                )
            )
        yield facts

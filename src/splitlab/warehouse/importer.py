"""Bulk import of CSV, Parquet and JSON Lines files with DuckDB's native readers.

Columns named as in ``/api/track`` (``experimentKey``, ``variantKey``, ``userKey``,
``eventType``, ``value``, ``eventId``, ``occurredAt``, ``props``) are taken as they are;
others are renamed through a mapping (``{"user_id": "userKey"}``). Every row is validated in
SQL by the same rules as the API (vectorised, no Python per row); rejected rows are counted
per reason with example row numbers. Valid rows go in with the same dedup keys
(``md5(concat_ws(chr(31), …))`` = ``facts.derive_id``), in one transaction; exposures of a
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

from splitlab.domain.summary import ExperimentSummary
from splitlab.errors import ValidationError
from splitlab.warehouse.facts import Fact, Kind, derive_id
from splitlab.warehouse.schema import IMPORT_CONFLICTS
from splitlab.warehouse.validation import (
    CLOCK_SKEW,
    CONTROL_SQL,
    MAX_ABS_VALUE,
    MAX_FUTURE,
    MAX_PROPS_BYTES,
    MAX_PROPS_DEPTH,
    MAX_TEXT,
    WHITESPACE,
)

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


NUMERIC = ("DOUBLE", "FLOAT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "DECIMAL")
KEY_COLUMNS = {
    "experiment_key": "experimentKey",
    "variant_key": "variantKey",
    "unit_id": "userKey",
    "event_name": "eventType",
    "client_id": "eventId",
}
ESCAPED_NUL_SQL = r"'(^|[^\\])(\\\\)*\\u0000'"
"""RE2: a ``\\u0000`` escape in JSON text (as ``validation.ESCAPED_NUL``)."""


def _too_deep_sql(guard: str, json_text: str) -> str:
    """SQL: JSON text nests deeper than ``MAX_PROPS_DEPTH``. Strings are blanked, then the
    innermost containers are removed ``MAX_PROPS_DEPTH`` times; a bracket left is too deep.
    Only texts whose ``guard`` text has that many brackets are looked at."""
    text = f"""regexp_replace({json_text}, '"([^"\\\\]|\\\\.)*"', '0', 'g')"""
    for _ in range(MAX_PROPS_DEPTH):
        text = rf"regexp_replace({text}, '[\[{{][^\[\]{{}}]*[\]}}]', '0', 'g')"
    brackets = f"length({guard}) - length(replace(replace({guard}, '{{', ''), '[', ''))"
    return f"CASE WHEN {brackets} > {MAX_PROPS_DEPTH} THEN regexp_matches({text}, '[\\[{{]') END"


def _item_rules_sql() -> str:
    """The ``WHEN … THEN`` rules of ``validation.parse_item`` that keep a stored item
    storable by every backend: keys, value range, time from 1970, ``props`` shape."""
    # Cheap tests on ``t.raw_keys`` (the keys as sent, concatenated) first; the exact ones,
    # on the trimmed keys, and the naming of the field only for the rows they cannot clear.
    # (Every mention of a trimmed key computes it again: DuckDB inlines the CTE.)
    too_long = " ".join(
        f"WHEN length(t.{column}) > {MAX_TEXT} THEN '{field}'"
        for column, field in KEY_COLUMNS.items()
    )
    control = " ".join(
        f"WHEN regexp_matches(t.{column}, '{CONTROL_SQL}') THEN '{field}'"
        for column, field in KEY_COLUMNS.items()
    )
    # the same for props: guards on the text as sent (parsing it as JSON again each time
    # would cost more than all the rules)
    raw = "CAST(t.raw_props AS VARCHAR)"
    props = "CAST(t.properties AS VARCHAR)"
    exact_nul = f"regexp_matches({props}, {ESCAPED_NUL_SQL})"
    nul = f"CASE WHEN contains({raw}, '\\u0000') OR contains({raw}, chr(0)) THEN {exact_nul} END"
    not_object = "json_type(t.properties) <> 'OBJECT'"
    object_ = f"CASE WHEN NOT starts_with(ltrim({raw}), '{{') THEN {not_object} END"
    return f"""
        WHEN CASE WHEN length(t.raw_keys) > {MAX_TEXT} THEN (CASE {too_long} END) IS NOT NULL END
            THEN CASE {too_long} END || ': is longer than {MAX_TEXT} characters'
        WHEN CASE WHEN regexp_matches(t.raw_keys, '{CONTROL_SQL}')
                  THEN (CASE {control} END) IS NOT NULL END
            THEN CASE {control} END || ': must not contain control characters (such as NUL)'
        WHEN t.raw_value IS NOT NULL AND abs(t.value) > {MAX_ABS_VALUE}
            THEN 'value: must be between -{MAX_ABS_VALUE:.0e} and {MAX_ABS_VALUE:.0e}'
        WHEN t.raw_props IS NOT NULL AND {object_} THEN 'props: must be a JSON object'
        WHEN t.raw_props IS NOT NULL AND {nul} THEN 'props: must not contain NUL characters'
        WHEN t.raw_props IS NOT NULL AND {_too_deep_sql(raw, props)}
            THEN 'props: nests deeper than {MAX_PROPS_DEPTH} levels'"""


def _trimmed(column: str) -> str:
    """SQL: ``column`` as text, trimmed as ``str.strip()`` trims; the full trim only for
    values that do not both start and end with a visible ASCII character."""
    text = f"CAST({column} AS VARCHAR)"
    plain = f"ascii({text}) BETWEEN 33 AND 126 AND ascii(right({text}, 1)) BETWEEN 33 AND 126"
    return f"NULLIF(CASE WHEN {plain} THEN {text} ELSE trim({text}, '{WHITESPACE}') END, '')"


SCALAR_JSON = "('VARCHAR', 'BIGINT', 'UBIGINT')"
"""JSON values a key may be (a string or an integer, as ``validation`` accepts)."""
NOT_KEY_TYPES = ("STRUCT", "MAP", "UNION", "DOUBLE", "FLOAT", "DECIMAL")


def _key_source(name: str, types: Mapping[str, str]) -> tuple[str, str]:
    """SQL of a key column's value and of "its value cannot be a key", by the column's type:
    a JSON column (rows of mixed types) holds a key only as a string or integer, unquoted
    with ``->>``; a nested or fractional column never does."""
    column, kind = _quote(name), types.get(name, "VARCHAR").upper()
    if kind == "JSON":
        scalar = f"json_type({column}) IN {SCALAR_JSON}"
        return f"CASE WHEN {scalar} THEN {column}->>'$' END", f"NOT {scalar}"
    if kind.startswith(NOT_KEY_TYPES) or kind.endswith("]"):
        return "NULL", f"{column} IS NOT NULL"
    return column, "FALSE"


def _validated_sql(
    kind: str, numeric_value: bool = False, types: Mapping[str, str] | None = None
) -> str:
    """Rows of ``splitlab_import_src`` with ``err`` (NULL when valid) and typed columns."""
    exposure = kind == "exposures"
    keys = {name: _key_source(name, types or {}) for name in KEY_COLUMNS.values()}
    if exposure:
        keys["eventType"] = ("'exposure'", "FALSE")
    wrong_type = " ".join(f"WHEN {wrong} THEN '{name}'" for name, (_, wrong) in keys.items())
    raw_keys = f"concat({', '.join(f'CAST({source} AS VARCHAR)' for source, _ in keys.values())})"
    ts = (
        "COALESCE(TRY_CAST(occurredAt AS TIMESTAMPTZ), "
        "TRY_CAST(TRY_CAST(occurredAt AS VARCHAR) AS TIMESTAMPTZ), now())"
    )
    props = "COALESCE(TRY_CAST(props AS JSON), '{}'::JSON)"
    future = int(MAX_FUTURE.total_seconds())
    # text columns: an empty value is a missing one; numeric columns need no round trip
    raw_value = "value" if numeric_value else _trimmed("value")
    return f"""
    WITH typed AS (
        SELECT {ROW_NUMBER} AS row_number,
               {_trimmed(keys["experimentKey"][0])} AS experiment_key,
               {_trimmed(keys["variantKey"][0])} AS variant_key,
               {_trimmed(keys["userKey"][0])} AS unit_id,
               {_trimmed(keys["eventType"][0])} AS event_name,
               {raw_value} AS raw_value, TRY_CAST({raw_value} AS DOUBLE) AS value,
               {_trimmed(keys["eventId"][0])} AS client_id,
               CASE {wrong_type} END AS wrong_type, {raw_keys} AS raw_keys,
               occurredAt AS raw_time, {ts} AS occurred_at,
               props AS raw_props, {props} AS properties
        FROM splitlab_import_src
    )
    SELECT t.*, CASE
        WHEN t.wrong_type IS NOT NULL THEN t.wrong_type || ': must be a string'
        WHEN t.unit_id IS NULL THEN 'userKey: is required and must not be empty'
        WHEN length(t.unit_id) > {MAX_TEXT} THEN 'userKey: is longer than {MAX_TEXT} characters'
        WHEN t.event_name IS NULL THEN 'eventType: is required'
        WHEN {"t.variant_key IS NULL" if exposure else "FALSE"}
            THEN 'variantKey: is required for an exposure'
        WHEN t.experiment_key IS NULL AND {"TRUE" if exposure else "t.client_id IS NULL"}
            THEN 'experimentKey: is required' || {"''" if exposure else "' without an eventId'"}
        WHEN t.experiment_key IS NOT NULL AND x.key IS NULL
            THEN 'experimentKey: unknown experiment'
        WHEN t.experiment_key IS NOT NULL AND NOT x.accepting
            THEN 'experimentKey: experiment is ' || x.status || ', not running'
        WHEN t.variant_key IS NOT NULL AND NOT list_contains(x.variants, t.variant_key)
            THEN 'variantKey: not a variant of this experiment'
        WHEN t.raw_value IS NOT NULL AND (t.value IS NULL OR isnan(t.value) OR isinf(t.value))
            THEN 'value: must be a finite number'
        WHEN t.raw_time IS NOT NULL AND TRY_CAST(t.raw_time AS TIMESTAMPTZ) IS NULL
             AND TRY_CAST(TRY_CAST(t.raw_time AS VARCHAR) AS TIMESTAMPTZ) IS NULL
            THEN 'occurredAt: is not a timestamp'
        WHEN NOT t.occurred_at BETWEEN TIMESTAMPTZ '1970-01-01 00:00:00+00'
                                   AND now() + INTERVAL {future} SECOND
            THEN CASE WHEN t.occurred_at < TIMESTAMPTZ '1970-01-01 00:00:00+00'
                      THEN 'occurredAt: is before 1970-01-01T00:00:00Z'
                      ELSE 'occurredAt: is more than 5 minutes in the future' END
        WHEN t.occurred_at < {"x.exposure_from" if exposure else "x.event_from"}
            THEN 'occurredAt: is before the experiment''s start'
                 || {"''" if exposure else "' minus its pre-period'"}
        WHEN t.raw_props IS NOT NULL AND TRY_CAST(t.raw_props AS JSON) IS NULL
            THEN 'props: is not JSON'
        WHEN strlen(CAST(t.properties AS VARCHAR)) > {MAX_PROPS_BYTES}
            THEN 'props: is over {MAX_PROPS_BYTES} bytes'{_item_rules_sql()}
        ELSE NULL END AS err
    FROM typed t LEFT JOIN splitlab_import_experiments x ON x.key = t.experiment_key
    """


SEP = "chr(31)"
KEY_SQL = {
    "exposures": f"md5(concat_ws({SEP}, experiment_key, unit_id))",
    "events": f"COALESCE(client_id, md5(concat_ws({SEP}, COALESCE(experiment_key, ''), unit_id, "
    "event_name)))",
}
EXPOSURE_EVENT_ID_SQL = (
    f"COALESCE(client_id, md5(concat_ws({SEP}, experiment_key, unit_id, 'exposure')))"
)
"""An exposure's event id: the client's, else ``derive_id(experiment, unit, 'exposure')``."""
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
    each key (otherwise a repeated key raises ``duckdb.ConstraintException``)."""
    if dedup:
        con.execute(
            f"INSERT INTO {table} SELECT {SELECT_SQL[table]} FROM splitlab_import_keyed v "
            "QUALIFY row_number() OVER (PARTITION BY key ORDER BY row_number) = 1 "
            "ON CONFLICT DO NOTHING"
        )
        return
    con.execute(
        f"INSERT INTO {table} SELECT {SELECT_SQL[table]} FROM splitlab_import_keyed v "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{KEYS[table]} = v.key)"
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
    if kind == "exposures":
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
    report.columns = [
        {"name": row[0], "type": str(row[1])}
        for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        if row[0] != "file_row_number"
    ]
    select = _mapped_columns(con, source, mapping)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW splitlab_import_src AS "
        f"SELECT {numbering} AS {ROW_NUMBER}, {select} FROM {source}"
    )
    con.register("splitlab_import_experiments", _experiments_table(experiments))
    types = {row[0]: str(row[1]) for row in con.execute("DESCRIBE splitlab_import_src").fetchall()}
    value_type = types["value"]
    numeric = str(value_type).upper().startswith(NUMERIC)
    checked = _validated_sql(kind, numeric, types)
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
            "SELECT * EXCLUDE (raw_value, raw_time, raw_props, occurred_at, wrong_type, raw_keys), "
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
    the dedup ``key`` (and an exposure's ``event_id``) computed as ``facts.derive_id`` does."""
    event_id = EXPOSURE_EVENT_ID_SQL if kind == "exposures" else "NULL"
    return con.sql(
        f"SELECT row_number, {KEY_SQL[kind]} AS key, {event_id} AS event_id, experiment_key, "
        "variant_key, unit_id, event_name, value, epoch_us(occurred_at) AS occurred_us, "
        "CAST(properties AS VARCHAR) AS properties "
        "FROM splitlab_import_valid ORDER BY row_number"
    ).to_arrow_reader(rows_per_batch)  # type: ignore[no-any-return]


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
            if exposure:
                key = derive_id(exp, unit)
                event_id = client_id or derive_id(exp, unit, "exposure")
            else:
                event_id = key = client_id or derive_id(exp or "", unit, name)
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

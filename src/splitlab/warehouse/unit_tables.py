"""Per-unit tables: one row per unit with outcome (or attribute) columns and no timestamps.

Many teams keep ``conversions_7d`` or ``revenue_30d`` per user instead of events. A file of
such rows is imported into ``unit_values`` (``unit_id, name, value``: one row per unit and
column, long rather than wide, so a new column needs no schema change and the analysis reads
only the columns its metrics name). A metric with ``source: units`` and ``column`` reads the
value there, joined to the experiment's units by unit id in the same per-unit table as the
event metrics (``queries.experiment_units`` with ``unit_columns``): one analysis pass.

Validation follows the event importer (``importer``, ``rules_sql``): DuckDB reads the file
and checks every row in SQL — the unit id by the same rules as ``userKey`` (present, a string
or integer, at most its length, no control characters), every value finite and within the
same range as an event's value, and a unit id at most once per file (the first row counts).
Text columns go to ``unit_attributes`` (at most 200 characters, no control characters; the
segments of ``plan.unit_segments``); columns of other types (dates, nested) are skipped and
reported. A column imported again
replaces the stored values of the units in the file; units the file lacks keep theirs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir

from splitlab.domain.limits import property_name_problem
from splitlab.errors import ValidationError
from splitlab.warehouse.importer import reader_sql
from splitlab.warehouse.rules import CONTROL_SQL, RULES, Check
from splitlab.warehouse.rules_sql import (
    NUMERIC,
    _key_source,
    _predicate,
    _trimmed,
)
from splitlab.warehouse.validation import now_us

UNIT_ID = "unit_id"
MAX_UNIT_COLUMNS = 200
"""Value columns one import may carry."""
USED = "value"
ATTRIBUTE = "attribute"
SKIPPED = "skipped"
MAX_ATTRIBUTE_LENGTH = 200
"""Characters of one text attribute value (a segment label)."""
_KEY_CHECKS = (Check.REQUIRED, Check.TYPE, Check.MAX_LENGTH, Check.NO_CONTROL)
_VALUE_LIMIT = next(r.limit for r in RULES if r.field == "value" and r.check is Check.RANGE)
UPSERT = (
    "INSERT INTO unit_values (unit_id, name, value, source, ingested_at) {rows} "
    "ON CONFLICT (unit_id, name) DO UPDATE SET value = excluded.value, "
    "source = excluded.source, ingested_at = excluded.ingested_at"
)
STAGE_COLUMNS = "unit_id TEXT, name TEXT, value DOUBLE PRECISION"
UPSERT_TEXT = (
    "INSERT INTO unit_attributes (unit_id, name, text, source, ingested_at) {rows} "
    "ON CONFLICT (unit_id, name) DO UPDATE SET text = excluded.text, "
    "source = excluded.source, ingested_at = excluded.ingested_at"
)


@dataclass
class UnitImportReport:
    """What an import of a unit table found and did."""

    file: str
    rows: int = 0
    accepted: int = 0
    """Valid rows (units) written."""
    values: int = 0
    """Non-missing values written (replacing stored ones of the same unit and column)."""
    attributes: int = 0
    """Non-missing text attributes written (``unit_attributes``)."""
    rejected: int = 0
    reasons: list[dict[str, Any]] = field(default_factory=list)
    columns: list[dict[str, str]] = field(default_factory=list)
    """Every file column: name, type and use (unit_id, value or skipped)."""
    preview: list[dict[str, Any]] = field(default_factory=list)
    written: bool = False

    @property
    def value_columns(self) -> list[str]:
        return [c["name"] for c in self.columns if c["use"] == USED]

    @property
    def attribute_columns(self) -> list[str]:
        return [c["name"] for c in self.columns if c["use"] == ATTRIBUTE]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (CLI ``--json`` and the API)."""
        return {"kind": "units", **self.__dict__}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def unit_id_column(names: Sequence[str], mapping: Mapping[str, str]) -> str:
    """The file column holding the unit id: ``--map unit_id=user_id`` (or ``user_id=unit_id``,
    the other imports' order), else a column named ``unit_id``."""
    unknown = [f"{a}={b}" for a, b in mapping.items() if UNIT_ID not in (a, b)]
    if unknown:
        raise ValidationError(
            "map: a unit table maps only its unit id column (unit_id=COLUMN), not "
            + ", ".join(unknown),
            details=[{"loc": ["map"], "msg": "unknown target"}],
        )
    chosen = [b if a == UNIT_ID else a for a, b in mapping.items()]
    column = chosen[0] if chosen else UNIT_ID
    if column not in names:
        raise ValidationError(
            f"map: the file has no column {column!r} for the unit id",
            details=[{"loc": ["map"], "msg": "unknown source column"}],
        )
    return column


def _numeric_type(kind: str) -> bool:
    kind = kind.upper()
    return (kind.startswith(NUMERIC) or kind == "BOOLEAN") and not kind.endswith("]")


def stage(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    mapping: Mapping[str, str],
    preview_rows: int = 0,
) -> UnitImportReport:
    """Read and check ``path`` into the temporary table ``splitlab_units_checked``
    (``row_number, unit_id, v0 … vK, err``); the report names the value columns in order."""
    report = UnitImportReport(file=str(path))
    source, numbering = reader_sql(path)
    try:
        described = [
            (str(r[0]), str(r[1]))
            for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
            if r[0] != "file_row_number"
        ]
    except duckdb.Error as exc:  # not a file of that format, or not readable
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ValidationError(
            f"file: cannot be read as {path.suffix.lstrip('.') or 'a table'}: {first}",
            details=[{"loc": ["file"], "msg": "unreadable"}],
        ) from exc
    names = [n for n, _ in described]
    id_column = unit_id_column(names, mapping)
    problems = []
    for name, kind in described:
        use = UNIT_ID if name == id_column else (USED if _numeric_type(kind) else SKIPPED)
        if use == SKIPPED and kind.upper() == "VARCHAR":
            use = ATTRIBUTE
        if use in (USED, ATTRIBUTE) and (problem := property_name_problem(name)):
            problems.append((name, problem))
        report.columns.append({"name": name, "type": kind, "use": use})
    if problems:
        raise ValidationError(
            "file: column names must be property names: "
            + "; ".join(f"{n[:50]!r} {p}" for n, p in problems),
            details=[{"loc": ["file", n[:50]], "msg": p} for n, p in problems],
        )
    values, texts = report.value_columns, report.attribute_columns
    if not values and not texts:
        raise ValidationError(
            "file: a unit table needs at least one numeric or text column besides the unit id",
            details=[{"loc": ["file"], "msg": "no value column"}],
        )
    if len(values) + len(texts) > MAX_UNIT_COLUMNS:
        raise ValidationError(f"file: at most {MAX_UNIT_COLUMNS} value columns per import")
    types = dict(described)
    key, wrong = _key_source(id_column, types[id_column].upper())
    typed = ", ".join(
        [f"CAST({_q(n)} AS DOUBLE) AS v{j}" for j, n in enumerate(values)]
        + [f"{_trimmed(_q(n))} AS s{j}" for j, n in enumerate(texts)]
    )
    rules = [r for r in RULES if r.field == "userKey" and r.check in _KEY_CHECKS]
    key_checks = " ".join(
        f"WHEN {_predicate(r)} THEN {_lit(f'{UNIT_ID}: {r.message}')}" for r in rules
    )
    value_checks = " ".join(
        f"WHEN NOT isfinite(t.v{j}) THEN {_lit(f'{n}: must be a finite number')} "
        f"WHEN abs(t.v{j}) > {_VALUE_LIMIT} "
        f"THEN {_lit(f'{n}: must be at most {_VALUE_LIMIT:g} in absolute value')}"
        for j, n in enumerate(values)
    ) + " ".join(
        f"WHEN length(t.s{j}) > {MAX_ATTRIBUTE_LENGTH} "
        f"THEN {_lit(f'{n}: at most {MAX_ATTRIBUTE_LENGTH} characters')} "
        f"WHEN regexp_matches(t.s{j}, '{CONTROL_SQL}') "
        f"THEN {_lit(f'{n}: must not contain control characters')}"
        for j, n in enumerate(texts)
    )
    repeated = "row_number() OVER (PARTITION BY t.unit_id ORDER BY t.row_number) > 1"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE splitlab_units_checked AS
        WITH read AS (
            SELECT {numbering} AS row_number, {_trimmed(key)} AS unit_id,
                   {wrong} AS unit_id_wrong, {typed}
            FROM {source}
        )
        SELECT t.* EXCLUDE (unit_id_wrong), COALESCE(
            CASE {key_checks} END,
            {f"CASE {value_checks} END," if value_checks else ""}
            CASE WHEN t.unit_id IS NOT NULL AND {repeated}
                 THEN 'unit_id: repeated in the file (its first row counts)' END) AS err
        FROM read t"""
    )
    report.rows, report.rejected = con.execute(
        "SELECT count(*), count(err) FROM splitlab_units_checked"
    ).fetchall()[0]
    reasons = con.execute(
        "SELECT err, count(*), list(row_number ORDER BY row_number)[1:5] "
        "FROM splitlab_units_checked WHERE err IS NOT NULL GROUP BY err ORDER BY 2 DESC, 1"
    ).fetchall()
    report.reasons = [{"reason": r[0], "rows": r[1], "examples": r[2]} for r in reasons]
    if preview_rows:
        shown = ", ".join(
            [f"v{j} AS {_q(n)}" for j, n in enumerate(values)]
            + [f"s{j} AS {_q(n)}" for j, n in enumerate(texts)]
        )
        cursor = con.execute(
            f"SELECT row_number, unit_id, {shown}, err FROM splitlab_units_checked "
            f"ORDER BY row_number LIMIT {int(preview_rows)}"
        )
        columns = [d[0] for d in cursor.description]
        report.preview = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return report


def long_rows_sql(values: Sequence[str], prefix: str = "v") -> str:
    """SQL of the valid staged rows as ``unit_id, name, value`` (missing values left out);
    ``prefix`` "s" for the text attributes."""
    parts = [
        f"SELECT unit_id, {_lit(n)} AS name, {prefix}{j} AS value FROM splitlab_units_checked "
        f"WHERE err IS NULL AND {prefix}{j} IS NOT NULL"
        for j, n in enumerate(values)
    ]
    return " UNION ALL ".join(parts)


def write_duckdb(con: duckdb.DuckDBPyConnection, report: UnitImportReport) -> None:
    """Upsert the staged values into the DuckDB warehouse's ``unit_values`` (caller's
    transaction)."""
    ingested = now_us()
    if report.value_columns:
        rows = (
            f"SELECT unit_id, name, value, 'import', make_timestamptz({ingested}) "
            f"FROM ({long_rows_sql(report.value_columns)})"
        )
        report.values = int(con.execute(UPSERT.format(rows=rows)).fetchall()[0][0])
    if report.attribute_columns:
        rows = (
            f"SELECT unit_id, name, value, 'import', make_timestamptz({ingested}) "
            f"FROM ({long_rows_sql(report.attribute_columns, 's')})"
        )
        report.attributes = int(con.execute(UPSERT_TEXT.format(rows=rows)).fetchall()[0][0])
    report.accepted = report.rows - report.rejected
    report.written = True


POSTGRES_UPSERT = UPSERT.format(
    rows="SELECT DISTINCT ON (unit_id, name) unit_id, name, value, 'import', "
    "to_timestamp(%(ingested)s / 1e6) FROM unit_stage"
)
STAGE_TEXT_COLUMNS = "unit_id TEXT, name TEXT, value TEXT"
POSTGRES_UPSERT_TEXT = UPSERT_TEXT.format(
    rows="SELECT DISTINCT ON (unit_id, name) unit_id, name, value, 'import', "
    "to_timestamp(%(ingested)s / 1e6) FROM unit_stage"
)


def unit_columns(unit_values: ir.Table, names: Sequence[str]) -> ir.Table:
    """``unit_id, u0 … uK``: per unit, the value of column ``names[k]`` (NULL when missing)
    — the unit table turned wide for just the columns an analysis reads."""
    wanted = unit_values.filter(unit_values.name.isin(list(names)))
    return wanted.group_by("unit_id").agg(
        **{
            unit_column(k): wanted.value.max(where=wanted.name == name)
            for k, name in enumerate(names)
        }
    )


def unit_column(index: int) -> str:
    """The per-unit column of the ``index``-th unit-table column an analysis reads."""
    return f"u{index}"


def import_duckdb(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    mapping: Mapping[str, str],
    write: bool = True,
    preview_rows: int = 0,
) -> UnitImportReport:
    """Validate (and, with ``write``, upsert) a unit table file on the DuckDB warehouse's
    connection, inside the caller's transaction."""
    report = stage(con, path, mapping=mapping, preview_rows=preview_rows)
    if write:
        write_duckdb(con, report)
    con.execute("DROP TABLE IF EXISTS splitlab_units_checked")
    return report


def write_postgres(pg: Any, con: duckdb.DuckDBPyConnection, report: UnitImportReport) -> int:
    """Stream the values (and text attributes) staged in DuckDB ``con`` into PostgreSQL ``pg``
    (a psycopg connection, caller's transaction) with ``COPY``, then upsert them; the values
    written (``report.attributes`` is set to the attributes written)."""
    import io

    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False)
    ingested = {"ingested": now_us()}
    written = {USED: 0, ATTRIBUTE: 0}
    plans = [
        (USED, report.value_columns, "v", STAGE_COLUMNS, POSTGRES_UPSERT),
        (ATTRIBUTE, report.attribute_columns, "s", STAGE_TEXT_COLUMNS, POSTGRES_UPSERT_TEXT),
    ]
    with pg.cursor() as cur:
        for use, columns, prefix, layout, upsert in plans:
            if not columns:
                continue
            reader = con.sql(long_rows_sql(columns, prefix)).to_arrow_reader(200_000)
            cur.execute("DROP TABLE IF EXISTS unit_stage")
            cur.execute(f"CREATE TEMP TABLE unit_stage ({layout}) ON COMMIT DROP")
            with cur.copy("COPY unit_stage FROM STDIN (FORMAT csv)") as copy:
                for batch in reader:
                    sink = io.BytesIO()
                    pacsv.write_csv(batch, sink, options)
                    copy.write(sink.getbuffer())
            cur.execute(upsert, ingested)
            written[use] = int(cur.rowcount)
    report.attributes = written[ATTRIBUTE]
    return written[USED]


def table_columns(metrics: Sequence[Any]) -> list[str]:
    """The unit-table columns the ``source: units`` metrics among ``metrics`` read, in order
    of first use (``unit_column(k)`` is ``names[k]``)."""
    return list(dict.fromkeys(m.column for m in metrics if m.source == "units" and m.column))


def join_unit_columns(units: ir.Table, unit_values: ir.Table, names: Sequence[str]) -> ir.Table:
    """``units`` with ``u0 … uK`` (the values of ``names``; NULL for a unit without one)
    beside each unit: a LEFT JOIN by unit id, on the units side of the event join."""
    wide = unit_columns(unit_values, names).rename(unit_key="unit_id")
    joined = units.left_join(wide, units.unit_id == wide.unit_key)
    return joined.select(*units.columns, *[unit_column(k) for k in range(len(names))])


def unit_metric_columns(
    table: ir.Table, metric: Any, value: str | None, names: Any
) -> dict[str, Any]:
    """Per-unit columns (``MetricColumns``) of a ``source: units`` metric read from per-unit
    column ``value`` (None: the unit table was not joined, so no unit has a value): events =
    1 with a value, nulls 0, never immature; binary 1 when the value is positive, count and
    sum the value (0 when missing), quantile the value (NULL when missing)."""
    raw = table[value].cast("float64") if value else ibis.null("float64")
    out: dict[str, Any] = {
        names.events: ibis.ifelse(raw.notnull(), 1, 0).cast("int64"),
        names.nulls: ibis.literal(0, type="int64"),
        names.immature: ibis.literal(0, type="int64"),
    }
    if metric.kind.value == "quantile":
        out[names.quantile_value] = raw
    elif metric.kind.value == "binary":
        out[names.value] = ibis.ifelse(raw.fill_null(0.0) > 0, 1, 0).cast("float64")
    else:
        out[names.value] = raw.fill_null(0.0)
    return out


def join_unit_attributes(
    units: ir.Table, unit_attributes: ir.Table, columns: Mapping[str, str]
) -> ir.Table:
    """``units`` with each text column in ``columns`` (``attr{k}`` → a unit-table attribute
    name) replaced by the unit's value of that attribute in ``unit_attributes`` ("(none)"
    when it has none): segments read from the unit table, joined by unit id."""
    names = list(columns.values())
    wanted = unit_attributes.filter(unit_attributes.name.isin(names))
    wide = wanted.group_by(attr_unit=wanted.unit_id).agg(
        **{
            f"unit_{column}": wanted.text.max(where=wanted.name == name)
            for column, name in columns.items()
        }
    )
    joined = units.left_join(wide, units.unit_id == wide.attr_unit)
    return joined.select(
        **{
            name: (
                joined[f"unit_{name}"].fill_null(MISSING_TEXT) if name in columns else joined[name]
            )
            for name in units.columns
        }
    )


MISSING_TEXT = "(none)"
"""As ``queries.MISSING``: the segment value of a unit without the attribute."""

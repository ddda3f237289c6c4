"""``rules.RULES`` compiled to the bulk importer's SQL (DuckDB).

DuckDB validates every import, also one bound for PostgreSQL (its valid rows then stream
there), so this is the one SQL dialect of the rules. ``validated_sql`` reads the file's rows
(``splitlab_import_src``, columns named as in ``/api/track``), types each field by the column's
type, and gives every row ``err``: ``"<field>: <message>"`` of the first rule it breaks, in the
table's order, or NULL. Each ``Check`` has one predicate here (``_PREDICATES``); rules of the
key fields and of ``props`` sit behind one cheap guard per group, so a valid row pays for a
length and a regex over its keys as sent, not for every exact check (DuckDB inlines the CTE:
every mention of a typed column computes it again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from splitlab.warehouse.rules import (
    CONTROL_SQL,
    EPOCH_MS_FROM,
    KEY_FIELDS,
    MAX_EPOCH_NUMBER,
    MAX_PROPS_DEPTH,
    RULES,
    TIME_TEXT_SQL,
    WHITESPACE,
    Applies,
    Check,
    Rule,
)

KEY_COLUMNS = {
    "eventType": "event_name",
    "experimentKey": "experiment_key",
    "variantKey": "variant_key",
    "userKey": "unit_id",
    "eventId": "client_id",
}
"""The staged column of each key field."""
HELPER_COLUMNS = (
    *(f"{column}_wrong" for column in KEY_COLUMNS.values()),
    "raw_keys",
    "raw_value",
    "value_wrong",
    "raw_time",
    "time_number",
    "time_text",
    "time_wrong",
    "raw_props",
)
"""Staged columns that only the checks read (a preview leaves them out)."""
SIGNED = ("INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT")
INTEGERS = (*SIGNED, *(f"U{name}" for name in SIGNED))
NUMERIC = ("DOUBLE", "FLOAT", "DECIMAL", *INTEGERS)
TEMPORAL = ("TIMESTAMP", "DATE")
NOT_TEXT = ("STRUCT", "MAP", "UNION", "BOOLEAN", "BLOB")
JSON_NUMBER = "('BIGINT', 'UBIGINT', 'DOUBLE')"
JSON_READABLE = "('BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR', 'NULL')"
"""JSON values a number or a time may be: a number, or text to read."""
ESCAPED_NUL_SQL = r"'(^|[^\\])(\\\\)*\\u0000'"
"""RE2: a ``\\u0000`` escape in JSON text (as ``validation.ESCAPED_NUL``)."""
EPOCH_SQL = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _trimmed(column: str) -> str:
    """SQL: ``column`` as text, trimmed as ``str.strip()`` trims, NULL when blank (in a file a
    blank cell is a missing value); the full trim only for values that do not both start and
    end with a visible ASCII character."""
    text = f"CAST({column} AS VARCHAR)"
    plain = f"ascii({text}) BETWEEN 33 AND 126 AND ascii(right({text}, 1)) BETWEEN 33 AND 126"
    return f"NULLIF(CASE WHEN {plain} THEN {text} ELSE trim({text}, '{WHITESPACE}') END, '')"


def _type(types: Mapping[str, str], name: str) -> str:
    return types.get(name, "VARCHAR").upper()


def _nested(kind: str) -> bool:
    return kind.startswith(NOT_TEXT) or kind.endswith("]")


def _numeric(kind: str) -> bool:
    return kind.startswith(NUMERIC) and not _nested(kind)


def _key_source(name: str, kind: str) -> tuple[str, str]:
    """SQL of a key column's value and of "its value is not a string or an integer": a JSON
    column (rows of mixed types) holds a key only as a string or integer, unquoted with
    ``->>``; a nested, boolean or fractional column never does."""
    column = _quote(name)
    if kind == "JSON":
        scalar = f"json_type({column}) IN ('VARCHAR', 'BIGINT', 'UBIGINT')"
        return (
            f"CASE WHEN {scalar} THEN {column}->>'$' END",
            f"{column} IS NOT NULL AND NOT {scalar}",
        )
    if _nested(kind) or kind.startswith(("DOUBLE", "FLOAT", "DECIMAL")):
        return "NULL", f"{column} IS NOT NULL"
    return column, "FALSE"


def _value_columns(kind: str) -> str:
    """``raw_value`` (present as sent), ``value`` (DOUBLE) and ``value_wrong`` (neither a
    number nor text). Text is read as a decimal number: files may carry numbers as text."""
    if _numeric(kind):
        return "value AS raw_value, CAST(value AS DOUBLE) AS value, FALSE AS value_wrong"
    if kind == "JSON":
        number = f"json_type(value) IN {JSON_NUMBER}"
        text = _trimmed("CASE WHEN json_type(value) = 'VARCHAR' THEN value->>'$' END")
        return (
            "NULLIF(CAST(value AS VARCHAR), 'null') AS raw_value, "
            f"CASE WHEN {number} THEN CAST(value AS DOUBLE) ELSE TRY_CAST({text} AS DOUBLE) END "
            f"AS value, json_type(value) NOT IN {JSON_READABLE} "
            "AS value_wrong"
        )
    if _nested(kind) or kind.startswith(TEMPORAL):
        return "value AS raw_value, NULL::DOUBLE AS value, value IS NOT NULL AS value_wrong"
    raw = _trimmed("value")
    return f"{raw} AS raw_value, TRY_CAST({raw} AS DOUBLE) AS value, FALSE AS value_wrong"


def _time_columns(kind: str) -> str:
    """``raw_time``, ``time_number`` (epoch seconds or milliseconds as sent), ``time_text``
    (text to read as ISO 8601) and ``time_wrong`` (neither), as ``parse_timestamp`` reads
    them; a date or timestamp column is read as it is (``_occurred_at``)."""
    number, text, wrong = "NULL::DOUBLE", "NULL::VARCHAR", "FALSE"
    if _numeric(kind):
        number = "CAST(occurredAt AS DOUBLE)"
    elif kind == "JSON":
        number = (
            f"CASE WHEN json_type(occurredAt) IN {JSON_NUMBER} THEN CAST(occurredAt AS DOUBLE) END"
        )
        text = "CASE WHEN json_type(occurredAt) = 'VARCHAR' THEN occurredAt->>'$' END"
        wrong = f"json_type(occurredAt) NOT IN {JSON_READABLE}"
    elif _nested(kind):
        wrong = "occurredAt IS NOT NULL"
    elif not kind.startswith(TEMPORAL):
        text = "CAST(occurredAt AS VARCHAR)"
    return (
        f"occurredAt AS raw_time, {number} AS time_number, {text} AS time_text, "
        f"{wrong} AS time_wrong"
    )


def _occurred_at(kind: str) -> str:
    """SQL (over the CTE's first level) of ``occurred_at``: the time the row happened."""
    if kind.startswith(TEMPORAL) and not _nested(kind):
        return "CASE WHEN raw_time IS NULL THEN now() ELSE CAST(raw_time AS TIMESTAMPTZ) END"
    seconds = (
        f"CASE WHEN time_number >= {EPOCH_MS_FROM} THEN time_number / 1000 ELSE time_number END"
    )
    from_number = f"make_timestamp(CAST(trunc(({seconds}) * 1000000) AS BIGINT))::TIMESTAMPTZ"
    from_text = (
        f"CASE WHEN regexp_full_match(time_text, '{TIME_TEXT_SQL}') "
        "THEN TRY_CAST(time_text AS TIMESTAMPTZ) END"
    )
    return f"""CASE WHEN raw_time IS NULL THEN now()
            WHEN time_number BETWEEN 0 AND {MAX_EPOCH_NUMBER} THEN {from_number}
            WHEN time_text IS NOT NULL THEN {from_text} END"""


def _too_deep_sql(guard: str, json_text: str) -> str:
    """SQL: JSON text nests deeper than ``MAX_PROPS_DEPTH``. Strings are blanked, then the
    innermost containers are removed ``MAX_PROPS_DEPTH`` times; a bracket left is too deep.
    Only texts whose ``guard`` text has that many brackets are looked at."""
    text = f"""regexp_replace({json_text}, '"([^"\\\\]|\\\\.)*"', '0', 'g')"""
    for _ in range(MAX_PROPS_DEPTH):
        text = rf"regexp_replace({text}, '[\[{{][^\[\]{{}}]*[\]}}]', '0', 'g')"
    brackets = f"length({guard}) - length(replace(replace({guard}, '{{', ''), '[', ''))"
    return f"CASE WHEN {brackets} > {MAX_PROPS_DEPTH} THEN regexp_matches({text}, '[\\[{{]') END"


RAW_PROPS = "CAST(t.raw_props AS VARCHAR)"
PROPS = "CAST(t.properties AS VARCHAR)"


def _props_type(rule: Rule) -> str:
    not_object = "json_type(t.properties) <> 'OBJECT'"
    return (
        f"TRY_CAST(t.raw_props AS JSON) IS NULL "
        f"OR CASE WHEN NOT starts_with(ltrim({RAW_PROPS}), '{{') THEN {not_object} END"
    )


def _props_nul(rule: Rule) -> str:
    exact = f"regexp_matches({PROPS}, {ESCAPED_NUL_SQL})"
    maybe = f"contains({RAW_PROPS}, '\\u0000') OR contains({RAW_PROPS}, chr(0))"
    return f"CASE WHEN {maybe} THEN {exact} END"


def _key(rule: Rule) -> str:
    return f"t.{KEY_COLUMNS[rule.field]}"


_PREDICATES: dict[Check, Callable[[Rule], str]] = {
    Check.REQUIRED: lambda r: f"{_key(r)} IS NULL AND NOT {_key(r)}_wrong",
    Check.NOT_EMPTY: lambda r: "FALSE",  # in a file a blank cell is a missing value
    Check.MAX_LENGTH: lambda r: f"length({_key(r)}) > {r.limit:.0f}",
    Check.NO_CONTROL: lambda r: f"regexp_matches({_key(r)}, '{CONTROL_SQL}')",
    Check.NEEDS_EVENT_ID: lambda r: "t.experiment_key IS NULL AND t.client_id IS NULL",
    Check.NEEDS_EXPERIMENT: lambda r: "t.experiment_key IS NULL AND t.variant_key IS NOT NULL",
    Check.FINITE: lambda r: (
        "NOT isfinite(t.value)" if r.field == "value" else "NOT isfinite(t.time_number)"
    ),
    Check.RANGE: lambda r: f"abs(t.value) > {r.limit}",
    Check.JSON: lambda r: "FALSE",  # a file holds JSON text, or DuckDB could not read it
    Check.MAX_BYTES: lambda r: f"strlen({PROPS}) > {r.limit:.0f}",
    Check.NO_NUL: _props_nul,
    Check.MAX_DEPTH: lambda r: _too_deep_sql(RAW_PROPS, PROPS),
    Check.NOT_BEFORE: lambda r: f"t.time_number < 0 OR t.occurred_at < {EPOCH_SQL}",
    Check.NOT_AFTER: lambda r: (
        f"t.time_number > {MAX_EPOCH_NUMBER} "
        f"OR t.occurred_at > now() + INTERVAL {r.limit:.0f} SECOND"
    ),
    Check.KNOWN_EXPERIMENT: lambda r: "t.experiment_key IS NOT NULL AND x.key IS NULL",
    Check.ACCEPTING: lambda r: "t.experiment_key IS NOT NULL AND NOT x.accepting",
    Check.KNOWN_VARIANT: lambda r: (
        "t.variant_key IS NOT NULL AND NOT list_contains(x.variants, t.variant_key)"
    ),
    Check.AFTER_START: lambda r: (
        "t.occurred_at < x.exposure_from"
        if r.applies is Applies.EXPOSURE
        else "t.occurred_at < x.event_from"
    ),
}
_TYPE_PREDICATES: dict[str, Callable[[Rule], str]] = {
    "value": lambda r: "t.raw_value IS NOT NULL AND (t.value_wrong OR t.value IS NULL)",
    "props": _props_type,
    "occurredAt": lambda r: (
        "t.raw_time IS NOT NULL AND (t.time_wrong OR (t.time_text IS NOT NULL "
        "AND t.occurred_at IS NULL))"
    ),
}


def _predicate(rule: Rule) -> str:
    if rule.check is Check.TYPE:
        if rule.field in KEY_COLUMNS:
            return f"{_key(rule)}_wrong"
        return _TYPE_PREDICATES[rule.field](rule)
    return _PREDICATES[rule.check](rule)


def _guard(rule: Rule) -> str | None:
    """A cheap condition that holds whenever the rule may be broken (per group of rules), or
    None for a rule checked on its own."""
    if rule.field in KEY_COLUMNS and rule.check in (
        Check.REQUIRED,
        Check.TYPE,
        Check.NOT_EMPTY,
        Check.MAX_LENGTH,
        Check.NO_CONTROL,
    ):
        return "keys"
    if rule.field == "props":
        return "props"
    if rule.check in (Check.NEEDS_EVENT_ID, Check.NEEDS_EXPERIMENT):
        return "no experiment"
    return None


def _group_guard(group: str, rules: list[Rule]) -> str:
    if group == "props":
        return "t.raw_props IS NOT NULL"
    if group == "no experiment":
        return "t.experiment_key IS NULL"
    parts = []
    for rule in rules:
        if rule.check is Check.REQUIRED:
            parts.append(f"{_key(rule)} IS NULL")
        elif rule.check is Check.TYPE:
            parts.append(f"{_key(rule)}_wrong")
    limit = max(r.limit or 0 for r in rules if r.check is Check.MAX_LENGTH)
    parts.append(f"length(t.raw_keys) > {limit:.0f}")
    parts.append(f"regexp_matches(t.raw_keys, '{CONTROL_SQL}')")
    return " OR ".join(parts)


def _verdict_sql(applies: Applies) -> str:
    """``err``: the message of the first rule in ``RULES`` a row breaks, or NULL."""
    rules = [r for r in RULES if r.applies in (Applies.ALWAYS, applies)]
    groups: list[tuple[str | None, list[Rule]]] = []
    for rule in rules:
        group = _guard(rule)
        if groups and groups[-1][0] == group:
            groups[-1][1].append(rule)
        else:
            groups.append((group, [rule]))
    parts = []
    for group, members in groups:
        whens = " ".join(
            f"WHEN {_predicate(r)} THEN {_literal(f'{r.field}: {r.message}')}" for r in members
        )
        if group is None:
            parts.append(f"CASE {whens} END")
        else:
            parts.append(f"CASE WHEN {_group_guard(group, members)} THEN CASE {whens} END END")
    return "COALESCE(\n        " + ",\n        ".join(parts) + ")"


def validated_sql(kind: str, types: Mapping[str, str], row_number: str) -> str:
    """Rows of ``splitlab_import_src`` with ``err`` (NULL when valid) and typed columns.

    ``types`` maps the source's columns to their DuckDB types; ``row_number`` is the SQL of
    a row's number in the file.
    """
    exposure = kind == "exposures"
    keys = {name: _key_source(name, _type(types, name)) for name in KEY_FIELDS}
    if exposure:
        keys["eventType"] = ("'exposure'", "FALSE")
    key_columns = ",\n               ".join(
        f"{_trimmed(source)} AS {KEY_COLUMNS[name]}, {wrong} AS {KEY_COLUMNS[name]}_wrong"
        for name, (source, wrong) in keys.items()
    )
    raw_keys = f"concat({', '.join(f'CAST({source} AS VARCHAR)' for source, _ in keys.values())})"
    time_kind = _type(types, "occurredAt")
    return f"""
    WITH read AS (
        SELECT {row_number} AS row_number,
               {key_columns},
               {raw_keys} AS raw_keys,
               {_value_columns(_type(types, "value"))},
               {_time_columns(time_kind)},
               props AS raw_props, COALESCE(TRY_CAST(props AS JSON), '{{}}'::JSON) AS properties
        FROM splitlab_import_src
    ), typed AS (
        SELECT *, {_occurred_at(time_kind)} AS occurred_at FROM read
    )
    SELECT t.*, {_verdict_sql(Applies.EXPOSURE if exposure else Applies.EVENT)} AS err
    FROM typed t LEFT JOIN splitlab_import_experiments x ON x.key = t.experiment_key
    """

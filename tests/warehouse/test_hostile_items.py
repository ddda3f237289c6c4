"""Hostile items get a clean verdict, the same on every path: ``parse_item`` (``/api/track``),
the column-wise batch path (``/api/events``) and the bulk importer's SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitlab.errors import SplitlabError, ValidationError
from splitlab.warehouse.columnar import parse_batch
from splitlab.warehouse.importer import import_into_duckdb
from splitlab.warehouse.validation import (
    MAX_ABS_VALUE,
    MAX_PROPS_DEPTH,
    error_entry,
    now_us,
    parse_item,
    to_us,
)
from tests.warehouse.conftest import START
from tests.warehouse.test_validation import EXPERIMENTS

NOW = to_us(START + timedelta(days=10))
BASE = {"experimentKey": "checkout", "userKey": "u1", "eventType": "purchase"}


def nested(levels: int) -> dict[str, Any]:
    """A JSON object nested ``levels`` deep (``{}`` is one level)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"occurredAt": -1e30}, "occurredAt"),
    ({"occurredAt": -1e15}, "occurredAt"),
    ({"occurredAt": -1}, "occurredAt"),
    ({"occurredAt": 1.7976931348623157e308}, "occurredAt"),
    ({"occurredAt": float("inf")}, "occurredAt"),  # what the body "1e400" decodes to
    ({"occurredAt": float("nan")}, "occurredAt"),
    ({"occurredAt": 10**400}, "occurredAt"),
    ({"occurredAt": "0001-01-01T00:00:00Z"}, "occurredAt"),
    ({"occurredAt": "9999-12-31T23:59:59-14:00"}, "occurredAt"),
    ({"occurredAt": [2024]}, "occurredAt"),
    ({"value": 1.7976931348623157e308}, "value"),
    ({"value": -1e16}, "value"),
    ({"value": 10**400}, "value"),
    ({"value": float("-inf")}, "value"),
    ({"value": {"x": 1}}, "value"),
    ({"userKey": "u\x00"}, "userKey"),
    ({"userKey": "a\x07b"}, "userKey"),
    ({"userKey": "a\x9bb"}, "userKey"),
    ({"userKey": "a\ud800"}, "userKey"),  # an unpaired surrogate (JSON "\ud800")
    ({"userKey": "u" * 201}, "userKey"),
    ({"userKey": {"id": 1}}, "userKey"),
    ({"experimentKey": "check\x00out"}, "experimentKey"),
    ({"variantKey": "b\x00"}, "variantKey"),
    ({"eventType": "buy\x00"}, "eventType"),
    ({"eventType": "e" * 201}, "eventType"),
    ({"eventId": "id\x1b[0m"}, "eventId"),
    ({"eventId": "i" * 201}, "eventId"),
    ({"eventId": 1.5}, "eventId"),
    ({"props": {"note": "a\x00b"}}, "props"),
    ({"props": {"k\x00": 1}}, "props"),
    ({"props": {"s": "\ud800"}}, "props"),
    ({"props": {"big": 2**70}}, "props"),
    ({"props": nested(MAX_PROPS_DEPTH + 1)}, "props"),
    ({"props": {"deep": nested(300)}}, "props"),  # deeper than orjson serialises
    ({"props": {"x": "y" * 9000}}, "props"),
    ({"props": "text"}, "props"),
]


@pytest.mark.parametrize(("fields", "field"), HOSTILE)
def test_a_hostile_item_is_a_422_naming_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_item(BASE | fields, lookup=EXPERIMENTS.get, now=NOW)
    assert caught.value.status == 422
    assert error_entry(caught.value)["field"] == field


@pytest.mark.parametrize(
    "fields",
    [
        {"value": MAX_ABS_VALUE},
        {"value": -MAX_ABS_VALUE},
        {"props": nested(MAX_PROPS_DEPTH)},
        {"props": {"escaped": "\\u0000"}},  # a backslash and "u0000", not a NUL
        {"props": {"brackets": "[[[[{{{{" * 10}},
        {"props": {"tab": "a\tb", "bell": "\x07"}},  # control characters are fine in props
        {"userKey": "  u1\t"},  # trimmed
        {"userKey": "ü \u00a0 名前"},
        {"occurredAt": (START + timedelta(days=1)).timestamp()},
    ],
)
def test_values_at_the_limits_are_accepted(fields: dict[str, Any]) -> None:
    assert parse_item(BASE | fields, lookup=EXPERIMENTS.get, now=NOW).unit_id


def test_the_batch_path_gives_every_hostile_item_the_same_error() -> None:
    items: list[Any] = [BASE | fields for fields, _ in HOSTILE] + [BASE]
    parsed = parse_batch(items, lookup=EXPERIMENTS.get, now=NOW)
    assert parsed.positions == [len(HOSTILE)]
    for index, (_, field) in enumerate(HOSTILE):
        assert error_entry(parsed.errors[index])["field"] == field


# ------------------------------------------------------------ parse_item == the batch path

TEXTS = st.one_of(
    st.sampled_from(["checkout", "cuped", "old", "b", "control", "u1", "exposure", "purchase"]),
    st.text(max_size=8),
    st.text(alphabet=st.characters(max_codepoint=0xA0), max_size=6),
    st.sampled_from(["", " ", "x" * 200, "x" * 201, "\x00", "a\x1fb", "\ud800", "\x85"]),
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
)
NUMBERS = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.sampled_from([1e15, -1e15, 1e15 + 1, 2**53 + 1, 10**400, -(10**30), "3", True]),
)
TIMES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=to_us(START) // 10**6, max_value=NOW // 10**6),
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    st.sampled_from(["yesterday", "1970-01-01T00:00:00Z", "2024-01-05", False]),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=4)
)
PROPS = st.one_of(
    st.none(),
    st.dictionaries(
        st.text(max_size=3),
        st.recursive(
            JSON_SCALARS,
            lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner),
            max_leaves=6,
        ),
        max_size=3,
    ),
    st.integers(30, 36).map(nested),
    st.lists(st.integers(), max_size=2),
    st.just("text"),
)
ITEMS = st.fixed_dictionaries(
    {},
    optional={
        "experimentKey": TEXTS,
        "variantKey": TEXTS,
        "userKey": TEXTS,
        "eventType": TEXTS,
        "eventId": TEXTS,
        "value": NUMBERS,
        "occurredAt": TIMES,
        "props": PROPS,
    },
)


def verdict(item: Any) -> tuple[str, Any]:
    try:
        return "fact", parse_item(item, lookup=EXPERIMENTS.get, now=NOW)
    except SplitlabError as error:
        return "error", (type(error), error_entry(error))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ITEMS | st.builds(lambda d: BASE | d, ITEMS), min_size=1, max_size=12))
def test_the_batch_path_and_parse_item_agree(items: list[dict[str, Any]]) -> None:
    parsed = parse_batch(items, lookup=EXPERIMENTS.get, now=NOW)
    got = {i: ("fact", fact) for i, fact in zip(parsed.positions, parsed.facts, strict=True)}
    got |= {i: ("error", (type(e), error_entry(e))) for i, e in parsed.errors.items()}
    assert sorted(got) == list(range(len(items)))
    for index, item in enumerate(items):
        assert got[index] == verdict(item), item


# ------------------------------------------------------------ parse_item == the importer


def importer_rejects(con: duckdb.DuckDBPyConnection, path: Path, item: dict[str, Any]) -> bool:
    """Whether the importer rejects ``item``, alone in a JSON Lines file (so that no other row
    changes the column types DuckDB infers)."""
    path.write_bytes(orjson.dumps(item) + b"\n")
    report = import_into_duckdb(con, path, kind="events", experiments=EXPERIMENTS, write=False)
    assert report.rows == 1
    return bool(report.rejected)


FILE_ITEMS: list[dict[str, Any]] = [
    {},
    {"eventId": "e-1", "value": 2.5, "props": {"sku": "a"}},
    {"occurredAt": "1969-12-31T23:59:59Z", "experimentKey": None, "eventId": "e-2"},
    {"occurredAt": "1970-01-01T00:00:00Z", "experimentKey": None, "eventId": "e-3"},
    {"occurredAt": "0001-01-01T00:00:00Z", "experimentKey": None, "eventId": "e-4"},
    {"occurredAt": "9999-12-31T23:59:59Z"},
    {"value": MAX_ABS_VALUE},
    {"value": -MAX_ABS_VALUE * 1.0000001},
    {"userKey": "  u1\t\x1f"},
    {"userKey": "a\x85b"},
    {"userKey": "a\u00a0b"},
    {"props": {"escaped": "\\u0000", "tab": "\t"}},
    {"props": {"brackets": "{[" * 40}},
    {"props": nested(MAX_PROPS_DEPTH)},
    {"props": {"list": [[1, [2]], {"a": [3]}]}},
    {"props": [1, 2]},
    {"eventType": "e" * 200},
    *(fields for fields, _ in HOSTILE),
]


def in_a_file(fields: dict[str, Any]) -> bool:
    """What a JSON file can hold as it is (no surrogates, NaN, infinities or 400-digit
    numbers)."""
    try:
        return orjson.loads(orjson.dumps(fields)) == fields
    except orjson.JSONEncodeError:
        return False


@pytest.mark.parametrize("fields", [f for f in FILE_ITEMS if in_a_file(f)], ids=repr)
def test_the_importer_and_parse_item_agree(fields: dict[str, Any], tmp_path: Path) -> None:
    item = {k: v for k, v in (BASE | fields).items() if v is not None}
    try:
        parse_item(item, lookup=EXPERIMENTS.get, now=now_us())
        rejected = False
    except SplitlabError:
        rejected = True
    con = duckdb.connect()
    try:
        assert importer_rejects(con, tmp_path / "item.jsonl", item) == rejected
    finally:
        con.close()


@pytest.mark.parametrize(
    ("user", "accepted"),
    [("u\x85v", False), ("u\x9fv", False), ("u\x7fv", False), ("u\x01v", False), ("£ © é", True)],
)
def test_one_control_character_in_a_clean_column_is_found(user: str, accepted: bool) -> None:
    """The batch path scans a column's bytes before any regex: C1 controls are C2 80–9F in
    UTF-8, while "£" (C2 A3) is text."""
    items = [BASE | {"userKey": f"u{i}", "eventId": f"e{i}"} for i in range(50)]
    items[17] = items[17] | {"userKey": user}
    parsed = parse_batch(items, lookup=EXPERIMENTS.get, now=NOW)
    assert (17 in parsed.positions) is accepted
    assert len(parsed.positions) == 49 + accepted


def test_keys_of_a_mixed_type_json_column_are_read_unquoted(tmp_path: Path) -> None:
    """A JSON Lines column holding strings and numbers is typed JSON by DuckDB: its keys are
    still the strings themselves, and the rules still apply to them."""
    rows = [
        BASE | {"userKey": 42, "eventId": "a"},
        BASE | {"userKey": " u1 ", "eventId": "b"},
        BASE | {"userKey": "u\x00v", "eventId": "c"},
        BASE | {"userKey": ["u"], "eventId": "d"},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    con = duckdb.connect()
    try:
        report = import_into_duckdb(
            con, path, kind="events", experiments=EXPERIMENTS, write=False, preview_rows=4
        )
    finally:
        con.close()
    assert [row["unit_id"] for row in report.preview[:2]] == ["42", "u1"]
    assert [row["err"] is None for row in report.preview] == [True, True, False, False]
    assert [row["err"].split(":")[0] for row in report.preview[2:]] == ["userKey", "userKey"]

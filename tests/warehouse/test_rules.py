"""One rule table, three paths: the same random items get the same verdict and message from
``parse_item`` (``/api/track``), ``parse_batch`` (``/api/events``) and the importer's SQL.

The importer validates on DuckDB also for a PostgreSQL warehouse (the valid rows then stream
there), so DuckDB is the SQL path to hold to the table. A file differs from a JSON body by
design (README, "Limits of an item"): a blank key is a missing one, and ``value`` and
``props`` may be text — the items below keep to what both can say, blank keys aside, which
the file's verdict reads as missing.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitlab.domain import Status
from splitlab.domain.summary import ExperimentSummary
from splitlab.errors import SplitlabError
from splitlab.warehouse.columnar import parse_batch
from splitlab.warehouse.importer import import_into_duckdb
from splitlab.warehouse.rules import RULES, TIME_TEXT, Check
from splitlab.warehouse.rules_sql import validated_sql
from splitlab.warehouse.validation import error_entry, now_us, parse_item

NOW = datetime.now(UTC)
START = NOW - timedelta(days=30)
EXPERIMENTS = {
    "checkout": ExperimentSummary("checkout", Status.RUNNING, frozenset({"control", "b"}), START),
    "old": ExperimentSummary("old", Status.STOPPED, frozenset({"control", "b"}), START),
    "cuped": ExperimentSummary(
        "cuped", Status.RUNNING, frozenset({"control", "b"}), START, timedelta(days=7)
    ),
}
BASE = {"experimentKey": "checkout", "userKey": "u1", "eventType": "purchase"}


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


KEYS = st.one_of(
    st.sampled_from(["checkout", "cuped", "old", "nope", "b", "control", "zzz", "u1"]),
    st.sampled_from(["exposure", " exposure", "purchase", "", "  ", " b\t", "x" * 200]),
    st.sampled_from(["x" * 201, " " + "y" * 200 + " ", "a\x00b", "a\x1fb", "a\x85b", "é\u00a0"]),
    st.text(max_size=6),
    st.integers(-5, 5),
    st.floats(-2, 2),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)
SECONDS = (START - timedelta(days=10)).timestamp(), (NOW + timedelta(minutes=10)).timestamp()
TIMES = st.one_of(
    st.integers(int(SECONDS[0]), int(SECONDS[1])),
    st.integers(int(SECONDS[0] * 1000), int(SECONDS[1] * 1000)),
    st.floats(SECONDS[0], SECONDS[1]),
    st.sampled_from([-1, 0, 10**11 - 1, 10**14, 10**14 + 1, 10**15, -1e30, 1.5e300, True]),
    st.datetimes(
        min_value=(START - timedelta(days=10)).replace(tzinfo=None),
        max_value=(NOW + timedelta(minutes=10)).replace(tzinfo=None),
        timezones=st.sampled_from([UTC, None]),
    ).map(lambda moment: moment.isoformat(sep=" " if moment.microsecond % 2 else "T")),
    st.sampled_from(
        [
            "yesterday",
            "2024-1-5",
            "20240105",
            "2024-W01-1",
            "2024-01-05T24:00:00",
            "infinity",
            "epoch",
            "1969-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-14:00",
            " 2024-01-05",
            "",
            f"{NOW.year + 1}-01-05",
            f"{NOW:%Y-%m-%d}",
            f"{NOW:%Y-%m-%dT%H:%M}Z",
            f"{NOW:%Y-%m-%dT%H:%M:%S}.123456789+00:00",
            f"{NOW:%Y-%m-%dT%H:%M:%S}+0530",
        ]
    ),
    st.lists(st.integers(), max_size=1),
)
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([1e15, -1e15, 1e15 + 1, -1e16, 1.7976931348623157e308, 0, True, False]),
    st.just({"x": 1}),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.text(max_size=4)
)
PROPS = st.one_of(
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
    st.sampled_from(
        [
            {"note": "a\x00b"},
            {"k\x00": 1},
            {"escaped": "\\u0000"},
            {"tab": "a\tb"},
            {"brackets": "[[{{" * 20},
        ]
    ),
    st.integers(8150, 8200).map(lambda n: {"x": "y" * n}),
    st.lists(st.integers(), max_size=2),
    st.just("text"),
)
FIELDS = {
    "experimentKey": KEYS,
    "variantKey": KEYS,
    "userKey": KEYS,
    "eventType": KEYS,
    "eventId": KEYS,
    "value": NUMBERS,
    "occurredAt": TIMES,
    "props": PROPS,
}
ITEMS = st.fixed_dictionaries({}, optional=FIELDS) | st.builds(
    lambda extra: BASE | extra, st.fixed_dictionaries({}, optional=FIELDS)
)


def in_a_file(item: dict[str, Any]) -> bool:
    """What a JSON Lines row holds exactly as the body would (no surrogates, NaN or >64-bit
    numbers)."""
    try:
        return bool(orjson.loads(orjson.dumps(item)) == item)
    except orjson.JSONEncodeError:
        return False


def as_in_a_file(item: dict[str, Any]) -> dict[str, Any]:
    """The item as a file's row is read: a blank key is a missing one."""
    return {k: v for k, v in item.items() if not (isinstance(v, str) and not v.strip())}


def row_verdict(item: dict[str, Any], now: int) -> str | None:
    try:
        parse_item(item, lookup=EXPERIMENTS.get, now=now)
    except SplitlabError as error:
        return error.message
    return None


def is_exposure(item: dict[str, Any]) -> bool:
    name = item.get("eventType")
    return isinstance(name, str) and name.strip() == "exposure"


def file_verdicts(items: list[dict[str, Any]], folder: Path) -> list[str | None]:
    """``err`` of each item, imported as a JSON Lines file (exposures and events apart)."""
    verdicts: list[str | None] = [None] * len(items)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        for kind in ("exposures", "events"):
            rows = [i for i, item in enumerate(items) if is_exposure(item) == (kind == "exposures")]
            if not rows:
                continue
            path = folder / f"{kind}.jsonl"
            path.write_bytes(b"".join(orjson.dumps(items[i]) + b"\n" for i in rows))
            report = import_into_duckdb(
                con, path, kind=kind, experiments=EXPERIMENTS, write=False, preview_rows=len(rows)
            )
            for index, row in zip(rows, report.preview, strict=True):
                verdicts[index] = row["err"]
    finally:
        con.close()
    return verdicts


def same_verdict(row: str | None, file: str | None) -> bool:
    """The row path may add context in parentheses after the table's message."""
    if row is None or file is None:
        return row == file
    return row == file or row.startswith(f"{file} (")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(items=st.lists(ITEMS, min_size=1, max_size=8))
def test_row_batch_and_sql_paths_agree(items: list[dict[str, Any]], tmp_path: Path) -> None:
    now = now_us()
    rows = [row_verdict(item, now) for item in items]
    parsed = parse_batch(items, lookup=EXPERIMENTS.get, now=now)
    batch = {i: error_entry(e)["message"] for i, e in parsed.errors.items()}
    assert [batch.get(i) for i in range(len(items))] == rows

    in_files = [as_in_a_file(item) for item in items if in_a_file(item)]
    expected = [row_verdict(item, now) for item in in_files]
    got = file_verdicts(in_files, tmp_path)
    for item, row, file in zip(in_files, expected, got, strict=True):
        assert same_verdict(row, file), (item, row, file, in_files)


def test_every_rule_reaches_the_sql() -> None:
    """Each rule of the table is a ``WHEN`` of the importer's SQL, with its message."""
    types = {name: "VARCHAR" for name in ("experimentKey", "userKey", "eventType", "value")}
    sql = validated_sql("events", types, "1") + validated_sql("exposures", types, "1")
    for rule in RULES:
        message = f"{rule.field}: {rule.message}".replace("'", "''")
        assert f"THEN '{message}'" in sql, rule


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("2024-01-05", True),
        ("2024-01-05T10:20", True),
        ("2024-01-05 10:20:30.123456789Z", True),
        ("2024-01-05T10:20:30+05:30", True),
        ("2024-01-05T10:20:30-0800", True),
        ("2024-01-05T10:20:30+05", True),
        ("20240105", False),
        ("2024-W01-1", False),
        ("2024-01-05T24:00:00", False),
        ("2024-1-5", False),
        ("0000-01-01", False),
        ("2024-01-05Z", False),
        ("infinity", False),
    ],
)
def test_the_time_text_is_the_iso_subset_both_read(
    text: str, accepted: bool, tmp_path: Path
) -> None:
    assert bool(TIME_TEXT.fullmatch(text)) is accepted
    item = BASE | {"eventId": "e", "experimentKey": "nope", "occurredAt": text}
    (file,) = file_verdicts([item], tmp_path)
    if accepted:
        assert file == "experimentKey: unknown experiment"
    else:
        assert file == "occurredAt: must be an ISO 8601 timestamp or epoch seconds/milliseconds"
    assert same_verdict(row_verdict(item, now_us()), file)


def test_numbers_may_be_text_in_a_file_not_in_a_body(tmp_path: Path) -> None:
    """The deliberate difference: a CSV column has no other type."""
    path = tmp_path / "events.csv"
    path.write_text('experimentKey,userKey,eventType,value,props\ncheckout,u1,buy,12.5,"{}"\n')
    con = duckdb.connect()
    try:
        report = import_into_duckdb(con, path, kind="events", experiments=EXPERIMENTS, write=False)
    finally:
        con.close()
    assert report.rejected == 0
    assert row_verdict(BASE | {"value": "12.5"}, now_us()) == "value: must be a number (got str)"


def test_numeric_epoch_times_import_as_the_api_reads_them(tmp_path: Path) -> None:
    """Epoch seconds and milliseconds, as integers or fractions, in typed and mixed columns."""
    moments = [START + timedelta(days=1, seconds=s) for s in (0, 0.5, 86_399)]
    values = list(
        itertools.chain.from_iterable(
            (m.timestamp(), int(m.timestamp()), int(m.timestamp() * 1000)) for m in moments
        )
    )
    for column in (values, [*values, "2024-01-05"]):
        items = [BASE | {"eventId": f"e{i}", "occurredAt": v} for i, v in enumerate(column)]
        path = tmp_path / "times.jsonl"
        path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        try:
            report = import_into_duckdb(
                con, path, kind="events", experiments=EXPERIMENTS, write=False, preview_rows=99
            )
        finally:
            con.close()
        now = now_us()
        for item, row in zip(items[: len(values)], report.preview, strict=False):
            fact = parse_item(item, lookup=EXPERIMENTS.get, now=now)
            stored = datetime.fromisoformat(row["occurred_at"])
            assert row["err"] is None
            assert round(stored.timestamp() * 1_000_000) == fact.occurred_us, item


def test_a_rule_change_is_one_edit() -> None:
    """The table is the only place a message is written: every path reports it verbatim."""
    (too_long,) = [r for r in RULES if r.field == "userKey" and r.check is Check.MAX_LENGTH]
    with pytest.raises(SplitlabError) as caught:
        parse_item(BASE | {"userKey": "u" * 201}, lookup=EXPERIMENTS.get, now=now_us())
    assert caught.value.message == f"userKey: {too_long.message}"

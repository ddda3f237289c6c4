"""File import on DuckDB and PostgreSQL: CSV, Parquet, JSON Lines; bad rows reported by reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from splitlab.errors import ValidationError
from splitlab.warehouse import Warehouse
from tests.warehouse.conftest import RUNNING

EXPERIMENTS = {"checkout": RUNNING}
ROWS = [
    # exp, user, type, value, id, time
    ("checkout", "u1", "purchase", "10", "e1", "2024-01-05T00:00:00Z"),
    ("checkout", "u2", "purchase", "abc", "e2", "2024-01-05T00:00:00Z"),  # bad value
    ("checkout", "", "purchase", "1", "e3", "2024-01-05T00:00:00Z"),  # empty user
    ("nope", "u3", "purchase", "1", "e4", "2024-01-05T00:00:00Z"),  # unknown experiment
    ("checkout", "u4", "purchase", "2", "e1", "2024-01-05T00:00:00Z"),  # duplicate id
    ("checkout", "u5", "purchase", "3", "", "2999-01-01T00:00:00Z"),  # future
    ("checkout", "u6", "signup", "", "", "2024-01-06T00:00:00Z"),  # derived id
]


def write_file(tmp_path: Path, fmt: str) -> Path:
    con = duckdb.connect()
    values = ", ".join("(" + ", ".join(f"'{v}'" for v in row) + ")" for row in ROWS)
    con.execute(
        f"CREATE TABLE t AS SELECT * FROM (VALUES {values}) "
        "v(exp, user_id, eventType, value, eventId, occurredAt)"
    )
    path = tmp_path / f"events.{fmt}"
    if fmt == "parquet":
        con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    elif fmt == "csv":
        con.execute(f"COPY t TO '{path}' (FORMAT csv, HEADER)")
    else:
        con.execute(f"COPY t TO '{path}' (FORMAT json)")
    con.close()
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_import_reports_bad_rows_and_dedups(warehouse: Warehouse, tmp_path: Path, fmt: str) -> None:
    path = write_file(tmp_path, fmt)
    mapping = {"exp": "experimentKey", "user_id": "userKey"}
    preview = warehouse.import_file(
        path,
        kind="events",
        experiments=EXPERIMENTS,
        mapping=mapping,
        write=False,
        preview_rows=3,
    )
    assert not preview.written and len(preview.preview) == 3
    assert {c["name"] for c in preview.columns} >= {"exp", "user_id", "eventType"}
    assert warehouse.watermark().events == 0

    report = warehouse.import_file(path, kind="events", experiments=EXPERIMENTS, mapping=mapping)
    assert (report.rows, report.rejected, report.accepted, report.duplicates) == (7, 4, 2, 1)
    reasons = {r["reason"].split(":")[0]: r["examples"] for r in report.reasons}
    assert reasons == {
        "value": [2],
        "userKey": [3],
        "experimentKey": [4],
        "occurredAt": [6],
    }
    again = warehouse.import_file(path, kind="events", experiments=EXPERIMENTS, mapping=mapping)
    assert (again.accepted, again.duplicates) == (0, 3)
    stored = dict(warehouse.query("SELECT event_id, value FROM events"))
    assert stored.pop("e1") == 10.0  # the first row with the id wins
    from splitlab.warehouse import derive_id

    assert list(stored) == [derive_id("checkout", "u6", "signup")]


def test_import_exposures_and_unknown_mapping(warehouse: Warehouse, tmp_path: Path) -> None:
    path = tmp_path / "exposures.csv"
    path.write_text(
        "experimentKey,variantKey,userKey,occurredAt\n"
        "checkout,control,u1,2024-01-02T00:00:00Z\n"
        "checkout,control,u1,2024-01-02T00:00:00Z\n"
        "checkout,zzz,u2,2024-01-02T00:00:00Z\n"
        "checkout,b,u3,2023-01-01T00:00:00Z\n"
    )
    report = warehouse.import_file(path, kind="exposures", experiments=EXPERIMENTS)
    assert (report.accepted, report.duplicates, report.rejected) == (1, 1, 2)
    assert warehouse.watermark().exposures == 1
    with pytest.raises(ValidationError, match="map"):
        warehouse.import_file(
            path, kind="exposures", experiments=EXPERIMENTS, mapping={"nope": "userKey"}
        )


def test_import_exposures_records_conflicts_like_the_writer(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse.record_exposures(
        [{"experiment_key": "checkout", "variant_key": "b", "unit_id": "u0"}]
    )
    path = tmp_path / "exposures.csv"
    path.write_text(
        "experimentKey,variantKey,userKey,occurredAt\n"
        "checkout,control,u1,2024-01-02T00:00:00Z\n"
        "checkout,b,u1,2024-01-02T01:00:00Z\n"  # u1 again in another variant: conflict
        "checkout,b,u1,2024-01-02T02:00:00Z\n"  # the same conflict again: duplicate
        "checkout,control,u0,2024-01-02T00:00:00Z\n"  # stored in b: conflict
        "checkout,b,u0,2024-01-02T00:00:00Z\n"  # same as stored: duplicate
    )
    report = warehouse.import_file(path, kind="exposures", experiments=EXPERIMENTS)
    assert (report.accepted, report.conflicts, report.duplicates) == (1, 2, 2)
    rows = warehouse.query(
        "SELECT unit_id, variant_key, first_variant_key, source FROM exposure_conflicts "
        "ORDER BY unit_id"
    )
    assert rows == [("u0", "control", "b", "import"), ("u1", "b", "control", "import")]
    (first,) = warehouse.query(
        "SELECT occurred_at FROM exposure_conflicts WHERE unit_id = 'u1'"
    )  # the file's first row of a conflict is the one recorded
    assert first[0] == datetime(2024, 1, 2, 1, tzinfo=UTC)
    again = warehouse.import_file(path, kind="exposures", experiments=EXPERIMENTS)
    assert (again.accepted, again.conflicts, again.duplicates) == (0, 0, 5)
    assert warehouse.watermark().conflicts == 2


def test_optimistic_bulk_import_rolls_back_and_dedups(warehouse: Warehouse, tmp_path: Path) -> None:
    """Event ids repeated far apart in a large file: the first row of each id wins."""
    path = tmp_path / "events.parquet"
    duckdb.sql(
        f"COPY (SELECT 'checkout' AS experimentKey, 'u' || i AS userKey, 'buy' AS eventType, "
        f"i AS value, 'id-' || (i % 3000) AS eventId FROM range(5000) r(i)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    report = warehouse.import_file(path, kind="events", experiments=EXPERIMENTS)
    assert (report.rows, report.accepted, report.duplicates) == (5000, 3000, 2000)
    assert warehouse.query("SELECT value FROM events WHERE event_id = 'id-7'") == [(7.0,)]

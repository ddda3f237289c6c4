"""``splitlab import`` as a user runs it: preview, --map, bad rows reported, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from splitlab.app import create_app
from splitlab.cli import app
from splitlab.config import Settings
from splitlab.warehouse import Warehouse
from tests.warehouse.server import EXPERIMENT, METRIC

runner = CliRunner()
CSV = (
    "exp,user_id,eventType,value,eventId,occurredAt\n"
    "checkout,u1,purchase,10,e1,2030-01-01T00:00:00Z\n"  # future: rejected
    "checkout,u2,purchase,abc,e2,\n"  # bad value: rejected
    "checkout,u3,purchase,3,e3,\n"
    "checkout,u3,purchase,3,e3,\n"  # duplicate id
    "nope,u4,purchase,1,e4,\n"  # unknown experiment
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An initialised home with the experiment ``checkout`` running."""
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("SPLITLAB_AUTH", "off")
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0

    def ok(response: Any) -> None:
        assert response.status_code in (200, 201), response.text

    with TestClient(create_app(Settings())) as http:
        ok(http.post("/api/metrics", json=METRIC))
        ok(http.post("/api/experiments", json=EXPERIMENT))
        ok(http.post("/api/experiments/checkout/transitions", json={"to": "review"}))
        ok(
            http.post(
                "/api/experiments/checkout/reviews", json={"decision": "approve", "comment": "ok"}
            )
        )
        ok(http.post("/api/experiments/checkout/transitions", json={"to": "running"}))
    yield tmp_path / "data"


def stored_events() -> int:
    warehouse = Warehouse.open(Settings().resolved_warehouse_url())
    try:
        return warehouse.watermark().events
    finally:
        warehouse.close()


def test_preview_shows_columns_rows_and_reasons_and_writes_nothing(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    maps = ["--map", "exp=experimentKey", "--map", "user_id=userKey"]
    result = runner.invoke(app, ["import", "events", str(path), "--preview", *maps])
    assert result.exit_code == 0, result.output
    assert "5 rows" in result.output and "user_id VARCHAR" in result.output
    assert '"unit_id": "u3"' in result.output
    assert "rejected 3" in result.output
    assert "occurredAt: is more than 5 minutes in the future (rows 1)" in result.output
    assert "accepted" not in result.output
    assert stored_events() == 0


def test_import_writes_valid_rows_and_reports_the_rest(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    args = ["import", "events", str(path), "--map", "exp=experimentKey", "--map", "user_id=userKey"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "accepted 1, duplicates 1" in result.output
    assert "value: must be a number (rows 2)" in result.output
    assert "experimentKey: unknown experiment (rows 5)" in result.output
    assert stored_events() == 1
    assert "accepted 0, duplicates 2" in runner.invoke(app, args).output  # idempotent


def test_bad_mapping_and_unknown_format_exit_1(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV)
    bad_map = runner.invoke(app, ["import", "events", str(path), "--map", "nope=userKey"])
    assert bad_map.exit_code == 1 and "the file has no column(s) nope" in bad_map.output
    malformed = runner.invoke(app, ["import", "events", str(path), "--map", "exp"])
    assert malformed.exit_code == 2
    other = tmp_path / "events.xlsx"
    other.write_text("x")
    unknown = runner.invoke(app, ["import", "events", str(other)])
    assert unknown.exit_code == 1 and "cannot tell the format" in unknown.output
    missing = runner.invoke(app, ["import", "events", str(tmp_path / "missing.csv")])
    assert missing.exit_code == 2

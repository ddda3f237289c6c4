"""``splitlab decisions record|list|approve`` on SQLite and PostgreSQL: an override recorded
from the CLI waits for a reviewer, ``--as`` approves it and the ramp starts; bad input is one
error line and exit code 1, with nothing recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from tests.store.test_contracts import CONTRACT

runner = CliRunner()
KEY = "fast-checkout"


@pytest.fixture
def home(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("SPLITLAB_DATABASE_URL", database_url)
    for name in ("SPLITLAB_AUTH", "SPLITLAB_SECRET_KEY", "SPLITLAB_WAREHOUSE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def running(tmp_path: Path) -> None:
    invoke("init")
    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    invoke("apply", "-f", str(contract))
    invoke("experiments", "transition", KEY, "review")
    invoke("users", "create", "rita", "--role", "reviewer", "--password", "long-password")
    invoke("experiments", "review", KEY, "approve", "--as", "rita")
    invoke("experiments", "transition", KEY, "running")


def decisions() -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(invoke("decisions", "list", KEY, "--json"))
    return listed


def test_record_list_and_approve_a_ship_with_a_ramp(home: Path, tmp_path: Path) -> None:
    running(tmp_path)
    out = invoke(
        "decisions",
        "record",
        KEY,
        "--action",
        "ship",
        "--rationale",
        "faster and no worse",
        "--variant",
        "fast",
        "--ramp",
        "5,25,50,100",
        "--hold-hours",
        "12",
    )
    # no recommendation was made: an override, waiting for a reviewer
    assert "decision 1: ship fast (override of no recommendation) — pending_approval" in out
    assert "experiment is running" in out

    approved = invoke("decisions", "approve", KEY, "1", "--as", "rita", "--comment", "go")
    assert "applied; experiment is rolling_out" in approved
    [decision] = decisions()
    assert decision["reviewed_by"] == "rita"
    assert decision["ramp"] == {
        "steps": [{"percent": p, "hold_hours": 12.0} for p in (5.0, 25.0, 50.0, 100.0)]
    }
    log = invoke("experiments", "audit", KEY)
    assert "decision approved (via local CLI --as, run by cli:" in log


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--action", "ship", "--rationale", "", "--variant", "fast"], "rationale"),
        (["--action", "ship", "--rationale", "x", "--variant", "slow"], "variant"),
        (["--action", "ship", "--rationale", "x", "--ramp", "5,abc"], "--ramp"),
        (["--action", "ship", "--rationale", "x", "--ramp", "50,10,100"], "ramp.steps.1"),
        (["--action", "explode", "--rationale", "x"], "action"),
        (["--action", "extend", "--rationale", "x", "--days", "0"], "days"),
    ],
)
def test_bad_input_is_one_error_and_records_nothing(
    home: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    running(tmp_path)
    result = runner.invoke(app, ["decisions", "record", KEY, *arguments])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output
    assert decisions() == []
    shown = json.loads(invoke("experiments", "show", KEY))
    assert shown["status"] == "running"


def test_approving_an_unknown_decision_fails_cleanly(home: Path, tmp_path: Path) -> None:
    running(tmp_path)
    result = runner.invoke(app, ["decisions", "approve", KEY, "42"])
    assert result.exit_code == 1
    assert "has no decision 42" in result.output

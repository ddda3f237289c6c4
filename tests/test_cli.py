"""The CLI as a user runs it: init, users, keys, apply, export, experiments."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from tests.store.test_contracts import CONTRACT

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "data"))
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_AUTH", "SPLITLAB_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_commands_need_init_first(home: Path) -> None:
    result = runner.invoke(app, ["experiments", "list"])
    assert result.exit_code == 1
    assert "splitlab init" in result.output


def test_init_is_idempotent_and_makes_secret(home: Path) -> None:
    assert "schema 0001" in invoke("init") or "schema" in invoke("init")
    invoke("init")
    assert (home / "secret_key").stat().st_mode & 0o777 == 0o600
    assert (home / "splitlab.db").exists()


def test_user_key_apply_export_and_lifecycle(home: Path, tmp_path: Path) -> None:
    invoke("init")
    invoke("users", "create", "admin", "--role", "admin", "--password", "long-password")
    key = invoke("keys", "create", "--scope", "ingest", "--user", "admin").split()[0]
    assert key.startswith("slk_")

    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    out = invoke("apply", "-f", str(contract))
    assert "experiment fast-checkout created" in out
    assert "fast-checkout" in invoke("experiments", "list")
    exported = invoke("export", "fast-checkout")
    assert "hypothesis: A faster checkout converts better" in exported

    invoke("experiments", "transition", "fast-checkout", "review", "--reason", "ready")
    invoke("users", "create", "rita", "--role", "reviewer", "--password", "long-password")
    invoke("experiments", "review", "fast-checkout", "approve", "--as", "rita")
    assert "now running" in invoke("experiments", "transition", "fast-checkout", "running")
    invoke("experiments", "note", "fast-checkout", "looks healthy")
    invoke("experiments", "clone", "fast-checkout", "fast-checkout-2")
    assert '"cloned_from": "fast-checkout"' in invoke("experiments", "show", "fast-checkout-2")
    log = invoke("experiments", "audit", "fast-checkout")
    assert "review → running" in log and "looks healthy" in log


def test_invalid_contract_reports_paths_and_exit_1(home: Path, tmp_path: Path) -> None:
    invoke("init")
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONTRACT.replace("weight: 0.5, payload", "weight: 7, payload"))
    result = runner.invoke(app, ["apply", "-f", str(bad)])
    assert result.exit_code == 1
    assert "experiment.variants[1].weight" in result.output
    assert "no experiments" in invoke("experiments", "list")


def test_forbidden_transition_exit_1(home: Path, tmp_path: Path) -> None:
    invoke("init")
    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    invoke("apply", "-f", str(contract))
    result = runner.invoke(app, ["experiments", "transition", "fast-checkout", "shipped"])
    assert result.exit_code == 1
    assert "cannot go from draft to shipped" in result.output


def _running_experiment(tmp_path: Path) -> None:
    invoke("init")
    invoke("users", "create", "rita", "--role", "reviewer", "--password", "long-password")
    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    invoke("apply", "-f", str(contract))
    invoke("experiments", "transition", "fast-checkout", "review")
    invoke("experiments", "review", "fast-checkout", "approve", "--as", "rita")
    invoke("experiments", "transition", "fast-checkout", "running")


@pytest.mark.parametrize("mode", [[], ["--dry-run"], ["--preview"]])
def test_import_where_every_row_is_rejected_exits_1(
    home: Path, tmp_path: Path, mode: list[str]
) -> None:
    _running_experiment(tmp_path)
    events = tmp_path / "events.csv"
    events.write_text("experimentKey,userKey,eventType\nno-such,u1,purchase\nno-such,u2,purchase\n")
    result = runner.invoke(app, ["import", "events", str(events), *mode])
    assert result.exit_code == 1, result.output
    assert "rejected 2" in result.output
    assert "2 × experimentKey: unknown experiment" in result.output
    assert "every row of" in result.output and "was rejected" in result.output


def test_import_with_some_rows_accepted_exits_0(home: Path, tmp_path: Path) -> None:
    _running_experiment(tmp_path)
    events = tmp_path / "events.csv"
    events.write_text(
        "experimentKey,userKey,eventType\nfast-checkout,u1,purchase\nno-such,u2,purchase\n"
    )
    out = invoke("import", "events", str(events))
    assert "accepted 1, duplicates 0" in out and "rejected 1" in out

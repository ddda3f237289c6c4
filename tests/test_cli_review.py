"""The CLI's review trail, on SQLite and PostgreSQL: an approval recorded with ``--as`` says it
came from the local CLI, and the audit log shows a creation as ``created``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from tests.store.test_contracts import CONTRACT

runner = CliRunner()


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


def test_as_approval_is_marked_as_local_cli(home: Path, tmp_path: Path) -> None:
    invoke("init")
    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    invoke("apply", "-f", str(contract))
    invoke("experiments", "transition", "fast-checkout", "review", "--reason", "ready")
    invoke("users", "create", "rita", "--role", "reviewer", "--password", "long-password")
    invoke("experiments", "review", "fast-checkout", "approve", "--as", "rita")

    log = invoke("experiments", "audit", "fast-checkout").splitlines()
    approval, _review, created = log[0], log[1], log[-1]
    assert "rita" in approval
    assert "approved (via local CLI --as, run by cli:" in approval
    assert "created" in created and "None" not in created and "→" not in created

    shown = json.loads(invoke("experiments", "show", "fast-checkout"))
    assert shown["created_by"].startswith("cli:")
    assert "now running" in invoke("experiments", "transition", "fast-checkout", "running")


def test_creator_cannot_approve_as_admin_without_a_reason(home: Path, tmp_path: Path) -> None:
    invoke("init")
    contract = tmp_path / "exp.yaml"
    contract.write_text(CONTRACT)
    invoke("apply", "-f", str(contract))
    invoke("experiments", "transition", "fast-checkout", "review")
    # the CLI acts as the local admin who created the experiment: a reason is required
    result = runner.invoke(app, ["experiments", "review", "fast-checkout", "approve"])
    assert result.exit_code == 1
    assert "must give a reason" in result.output
    invoke("experiments", "review", "fast-checkout", "approve", "--comment", "solo project")

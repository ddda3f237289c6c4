"""``splitlab decide`` and ``splitlab policy get|put`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from splitlab.decisions.recommendation import Code

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


def test_decide_prints_code_label_summary_and_reasons(home: Path) -> None:
    invoke("init")
    invoke("simulate", "aa_null", "--units", "2000", "--start", "2024-05-01")
    text = invoke("decide", "aa_null")
    first, summary = text.splitlines()[:2]
    assert summary and not summary.startswith("aa_null")
    assert "reasons:" in text and "trust_ok" in text and "policy: default" in text
    data = json.loads(invoke("decide", "aa_null", "--json"))
    assert data["experiment"] == "aa_null" and data["code"] in {c.value for c in Code}
    assert first == f"aa_null: {data['code']} ({data['label']})"
    assert json.loads(invoke("decide", "aa_null", "--json", "--refresh"))["code"] == data["code"]
    missing = runner.invoke(app, ["decide", "nope"])
    assert missing.exit_code == 1 and "error:" in missing.output


def test_policy_put_validates_and_get_shows_stored_and_resolved(home: Path, tmp_path: Path) -> None:
    invoke("init")
    fresh = json.loads(invoke("policy", "get", "default"))
    assert fresh["stored"] is False and fresh["resolved"]["maturity"]["min_days"] == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("guardrails:\n  rules:\n    - {metric: lat-ms, max_ratio: 0.5}\n")
    result = runner.invoke(app, ["policy", "put", "default", str(bad)])
    assert result.exit_code == 1
    assert "guardrails.rules[0].max_ratio: must be > 1" in result.output
    good = tmp_path / "good.yaml"
    good.write_text("maturity: {min_days: 10}\nsegments: {correction: bonferroni}\n")
    out = invoke("policy", "put", "default", str(good))
    assert out.startswith("stored policy default (version 1)")
    stored = json.loads(invoke("policy", "get", "default"))
    assert stored["stored"] is True and stored["document"] == {
        "maturity": {"min_days": 10},
        "segments": {"correction": "bonferroni"},
    }
    assert stored["resolved"]["segments"]["correction"] == "bonferroni"
    assert stored["updated_by"].startswith("cli:")
    assert runner.invoke(app, ["policy", "get", "Nope"]).exit_code == 1
    assert (
        runner.invoke(app, ["policy", "put", "default", str(tmp_path / "none.yaml")]).exit_code == 1
    )

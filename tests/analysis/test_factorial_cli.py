"""``splitlab factorial KEY`` and ``splitlab interactions KEY --with OTHER`` on simulated
scenarios: the tables, ``--json``, and errors as a message with exit code 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "home"))
    assert runner.invoke(app, ["init"]).exit_code == 0
    for name in ("factorial_2x2", "interacting_experiments"):
        args = ["simulate", name, "--units", "8000", "--start", "2024-05-01"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert (
        "concurrent experiment interacting-banner on the same units: splitlab interactions "
        "interacting_experiments --with interacting-banner" in result.output
    )
    return tmp_path / "home"


def test_factorial_prints_the_anova_table_and_json(home: Path) -> None:
    result = runner.invoke(app, ["factorial", "factorial_2x2"])
    assert result.exit_code == 0, result.output
    assert "| factor | low (control) | high |" in result.output
    assert "| layout | old | new |" in result.output
    assert "| layout × price |" in result.output
    assert "not decomposed: not_a_unit_mean" in result.output  # the ratio metric
    data = json.loads(runner.invoke(app, ["factorial", "factorial_2x2", "--json"]).output)
    assert [e["term"] for e in data["metrics"][0]["effects"]] == [
        "layout",
        "price",
        "layout × price",
    ]


def test_interactions_prints_effects_by_the_other_arm(home: Path) -> None:
    args = ["interactions", "interacting_experiments", "--with", "interacting-banner"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "8000 of 8000 units are in both" in result.output
    assert "interaction (banner − control)" in result.output
    assert "no-interaction F(1, 7996)" in result.output
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert data["other"] == "interacting-banner"


def test_errors_exit_with_a_message(home: Path) -> None:
    plain = runner.invoke(app, ["factorial", "interacting_experiments"])
    assert plain.exit_code == 1 and "not factorial" in plain.output
    missing = runner.invoke(app, ["interactions", "factorial_2x2", "--with", "nope"])
    assert missing.exit_code == 1 and "nope" in missing.output

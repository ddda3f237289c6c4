"""``splitlab scenarios`` and ``splitlab simulate``."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from splitlab.simulate import scenario_names

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "home"))
    assert runner.invoke(app, ["init"]).exit_code == 0
    return tmp_path / "home"


def test_scenarios_lists_one_line_each() -> None:
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == scenario_names()


def test_simulate_creates_a_running_experiment_and_saves_truth(home: Path, tmp_path: Path) -> None:
    args = ["simulate", "low_power_noisy", "--units", "400", "--days", "5", "--seed", "3"]
    args += ["--key", "lp-cli", "--start", "2024-06-01", "--export", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "experiment lp-cli created" in result.output
    assert "exposures: accepted 400, duplicates 0, rejected 0" in result.output
    truth_path = home / "simulations" / "lp-cli" / "truth.json"
    assert f"truth: {truth_path}" in result.output
    truth = json.loads(truth_path.read_text())
    assert truth["experiment"] == "lp-cli" and truth["seed"] == 3
    assert pq.read_table(tmp_path / "out" / "exposures.parquet").num_rows == 400
    events = pq.read_table(tmp_path / "out" / "events.parquet").num_rows

    again = runner.invoke(app, args)  # the same run again stores nothing new
    assert again.exit_code == 0, again.output
    assert "already running" in again.output
    assert "exposures: accepted 0, duplicates 400" in again.output
    assert f"events: accepted 0, duplicates {events:,}" in again.output

    audit = runner.invoke(app, ["experiments", "audit", "lp-cli"]).output
    assert "simulate" in audit and "review → running" in audit


def test_simulate_refuses_bad_input(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\nstreams: {}\nmetrics: []\nexperiment: {}\n")
    result = runner.invoke(app, ["simulate", "--file", str(bad)])
    assert result.exit_code == 1
    assert "streams" in result.output and "metrics" in result.output
    assert runner.invoke(app, ["simulate", "no-such-scenario"]).exit_code == 1
    future = runner.invoke(app, ["simulate", "aa_null", "--start", "2099-01-01"])
    assert future.exit_code == 1 and "future" in future.output

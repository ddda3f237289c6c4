"""The validity suite: a bounded run (4,000 simulations per check) inside tolerance bands,
the two known findings reproduced, determinism by seed, and the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.cli import app
from splitlab.simulate.validity import CHECKS, ValidityReport, render_table, run_validity
from splitlab.simulate.validity_sims import Figure

SIMS = 4000
BAND = 0.015  # ±1.5 points
HEAVY = "revenue: 60% zeros"


@pytest.fixture(scope="module")
def report() -> ValidityReport:
    return run_validity(sims=SIMS, seed=7)


def _find(report: ValidityReport, method: str, measure: str, scenario: str = "") -> Figure:
    found = [
        f
        for f in report.figures
        if f.method == method and f.measure == measure and f.scenario.startswith(scenario)
    ]
    assert len(found) == 1, (method, measure, scenario)
    return found[0]


def test_every_method_is_checked(report: ValidityReport) -> None:
    methods = {f.method for f in report.figures}
    assert set(CHECKS) <= methods | {"bayesian"}
    assert {"z", "welch", "cuped", "ratio", "quantile", "sequential", "msprt", "sprt"} <= methods
    assert {"bayesian_final", "bayesian_daily", "srm"} <= methods
    assert all(f.sims == SIMS for f in report.figures)


def test_false_positive_rates_within_band(report: ValidityReport) -> None:
    rates = [f for f in report.figures if f.measure == "false_positive_rate" and f.rule != "report"]
    assert len(rates) >= 11
    for f in rates:
        if f.rule == "at_most":
            assert f.value <= f.target + BAND, f
        else:
            assert f.value == pytest.approx(f.target, abs=BAND), f


def test_coverage_within_band(report: ValidityReport) -> None:
    coverages = [
        f
        for f in report.figures
        if "coverage" in f.measure
        and not (f.measure.startswith("rel_coverage_delta") and f.scenario.startswith(HEAVY))
    ]
    assert len(coverages) >= 14
    for f in coverages:
        if f.rule == "at_least":
            assert f.value >= f.target - BAND, f
        else:
            assert f.value == pytest.approx(0.95, abs=BAND), f


def test_finding_delta_relative_ci_short_on_heavy_tails(report: ValidityReport) -> None:
    delta = _find(report, "welch", "rel_coverage_delta", HEAVY)
    fieller = _find(report, "welch", "rel_coverage_fieller", HEAVY)
    assert delta.value < 0.945  # the delta method under-covers (≈ 93.6% at 10,000 simulations)
    assert fieller.value > delta.value + 0.01
    assert fieller.value == pytest.approx(0.95, abs=BAND)
    delta_at_lift = _find(report, "welch", "rel_coverage_delta_at_lift", HEAVY)
    fieller_at_lift = _find(report, "welch", "rel_coverage_fieller_at_lift", HEAVY)
    assert fieller_at_lift.value > delta_at_lift.value + 0.005
    assert fieller_at_lift.value == pytest.approx(0.95, abs=BAND)
    # On a light-tailed metric the delta method is accurate: it stays the default.
    light = _find(report, "welch", "rel_coverage_delta", "normal metric")
    assert light.value == pytest.approx(0.95, abs=BAND)


def test_finding_bayesian_rule_under_daily_peeking(report: ValidityReport) -> None:
    final = _find(report, "bayesian_final", "false_positive_rate")
    daily = _find(report, "bayesian_daily", "false_positive_rate")
    assert final.value == pytest.approx(0.10, abs=BAND)
    assert 0.32 < daily.value < 0.44  # ≈ 37%
    assert daily.status == "finding"
    assert "before its planned horizon" in daily.note


def test_cuped_variance_reduction_and_power(report: ValidityReport) -> None:
    ratio = _find(report, "cuped", "variance_ratio")
    assert ratio.target == pytest.approx(0.51)
    assert ratio.value == pytest.approx(0.51, abs=0.04)
    for method in ("z", "cuped", "ratio", "quantile", "bayesian_final", "srm"):
        power = _find(report, method, "power")
        assert power.value == pytest.approx(power.target, abs=0.03), power


def test_table_and_json(report: ValidityReport) -> None:
    table = render_table(report)
    daily = [line for line in table.splitlines() if line.startswith("bayesian_daily ")]
    assert "false_positive_rate" in daily[0] and daily[0].endswith("finding")
    assert "rel_coverage_fieller" in table
    document = report.to_json()
    assert document["sims"] == SIMS
    statuses = {f["status"] for f in document["figures"]}
    assert statuses <= {"ok", "off", "finding"}
    json.dumps(document, allow_nan=False)


def test_same_seed_same_figures() -> None:
    first = run_validity(sims=300, seed=3, checks=["welch", "bayesian"])
    again = run_validity(sims=300, seed=3, checks=["bayesian"])
    other = run_validity(sims=300, seed=4, checks=["bayesian"])
    values = [f.value for f in first.figures if f.method.startswith("bayesian")]
    assert values == [f.value for f in again.figures]  # independent of the other checks run
    assert values != [f.value for f in other.figures]
    with pytest.raises(ValueError, match="unknown check"):
        run_validity(sims=300, checks=["nope"])


def test_cli_writes_validity_json(tmp_path: Path) -> None:
    out = tmp_path / "validity.json"
    result = CliRunner().invoke(
        app,
        [
            "validate",
            *("--sims", "200", "--check", "srm", "--seed", "1", "--out", str(out)),
            *("--pipeline-runs", "0"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "srm" in result.output and "false_positive_rate" in result.output
    document = json.loads(out.read_text())
    assert {f["method"] for f in document["figures"]} == {"srm"}
    bad = CliRunner().invoke(app, ["validate", "--check", "nope", "--out", str(out)])
    assert "unknown check" in bad.output
    assert bad.exit_code == 1


def test_pipeline_runs_end_to_end() -> None:
    """Three runs of each scenario through simulate → import → analyze, against truth.json."""
    report = run_validity(sims=100, checks=["srm"], pipeline_runs=3, seed=11)
    pipeline = [f for f in report.figures if f.method == "pipeline"]
    measures = {(f.scenario.split(" runs of ")[1].split(" ")[0], f.measure) for f in pipeline}
    assert measures == {
        ("aa_null", "rel_coverage"),
        ("aa_null", "false_positive_rate"),
        ("aa_null", "critical_health_rate"),
        ("global_positive", "rel_coverage"),
    }
    critical = next(f for f in pipeline if f.measure == "critical_health_rate")
    assert critical.sims == 3 and critical.value == 0.0  # A/A runs raise nothing critical
    assert all(f.sims >= 3 for f in pipeline)
    assert "pipeline" in report.seconds

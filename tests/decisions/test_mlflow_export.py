"""MLflow export: what one snapshot becomes (params, metrics, series, tags), logged to a local
file store and read back, once per snapshot and policy; the CLI command; a clear error when
MLflow is missing."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from splitlab.analysis import latest
from splitlab.config import Settings
from splitlab.decisions.mlflow_export import (
    MlflowUnavailableError,
    export_mlflow,
    guardrail_violations,
    mlflow_run,
)
from splitlab.decisions.recommendation import Code, Reason, Stage
from splitlab.decisions.service import recommend_experiment, resolve_policy
from splitlab.services import Services
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade
from tests.decisions.report_helpers import advice, simulate
from tests.decisions.snapshots import metric, row, snapshot

SCENARIO = "latency_regression"


def test_the_run_of_a_snapshot() -> None:
    rows = [
        row("conversion", rel=0.118, ci=(0.061, 0.175), p=0.0002, p_adjusted=0.0004),
        row("latency", rel=0.30, ci=(0.29, 0.31), p=1e-9, control_mean=120.0),
    ]
    snap = snapshot(
        metrics=[metric("conversion"), metric("latency", "guardrail", direction="decrease")],
        rows=rows,
    )
    breach = Reason(
        stage=Stage.GUARDRAILS,
        code="guardrail_breach",
        message="latency +30%",
        metric="latency",
        variant="treatment",
    )
    ok = Reason(stage=Stage.GUARDRAILS, code="ratio_rule_ok", message="fine", metric="x")
    recommendation = advice(code=Code.HOLD_GUARDRAIL_RISK, reasons=[breach, ok, breach])
    run = mlflow_run(snap, recommendation, minimum_lift=("relative", 0.02))
    assert run.params["alpha"] == "0.05"
    assert run.params["minimum_lift"] == "0.02"
    assert run.params["minimum_lift_kind"] == "relative"
    assert run.params["test"].startswith("z (binary)")
    assert run.params["primary_metric"] == "conversion"
    assert run.metrics["users.control"] == 10_000
    assert run.metrics["conversion.control.mean"] == pytest.approx(0.1)
    assert run.metrics["conversion.treatment.mean"] == pytest.approx(0.1118)
    assert run.metrics["conversion.treatment.lift"] == 0.118
    assert run.metrics["conversion.treatment.lift_ci_low"] == 0.061
    assert run.metrics["conversion.treatment.p_value"] == 0.0002
    assert run.metrics["conversion.treatment.p_value_adjusted"] == 0.0004
    assert run.metrics["latency.control.mean"] == 120.0  # the latency itself, in its unit
    assert run.metrics["latency.treatment.mean"] == pytest.approx(156.0)
    assert "conversion.treatment.chance_to_win" not in run.metrics  # not with this engine
    assert run.tags["splitlab.decision"] == "HOLD_GUARDRAIL_RISK"
    assert run.tags["splitlab.experiment"] == "exp"
    assert run.tags["splitlab.guardrail_violations"] == "latency:treatment"  # once, not "ok"
    assert run.tags["splitlab.guardrail_violation_count"] == "1"
    assert guardrail_violations(advice()) == []


@pytest.fixture
def simulated(services: Services) -> str:
    return simulate(services, SCENARIO)


def test_export_to_a_local_file_store(services: Services, simulated: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    result = export_mlflow(services=services, key=simulated, tracking_uri=uri)
    assert result.created and result.experiment_name == f"splitlab/{simulated}"
    recommendation = recommend_experiment(services=services, key=simulated)
    snap = latest(services=services, key=simulated)
    client = MlflowClient(tracking_uri=uri)
    data = client.get_run(result.run_id).data
    assert data.tags["splitlab.decision"] == recommendation.code.value
    assert data.tags["splitlab.snapshot_id"] == str(snap.snapshot_id)
    # the simulated latency regression (+30%) is the violation the engine names
    assert "lr-latency-ms:edge_v2" in data.tags["splitlab.guardrail_violations"]
    threshold = resolve_policy(services=services, key=simulated).primary.min_lift.threshold(
        "lr-ctr"
    )
    assert data.params["minimum_lift"] == str(threshold[1])
    assert data.params["alpha"] == str(snap.settings["alpha"])
    result_row = snap.result("lr-latency-ms", "edge_v2")
    assert data.metrics["lr-latency-ms.edge_v2.lift"] == pytest.approx(result_row.rel_effect)
    assert data.metrics["lr-latency-ms.edge_v2.mean"] == pytest.approx(result_row.treatment_mean)
    assert data.metrics["users.edge_v1"] == snap.units[0].n
    history = client.get_metric_history(result.run_id, "lr-ctr.edge_v2.daily_lift")
    daily = [p for p in snap.daily if p.metric == "lr-ctr" and p.rel_effect is not None]
    assert [m.step for m in history] == list(range(len(daily)))
    assert all(
        math.isclose(m.value, p.rel_effect)  # type: ignore[arg-type]
        for m, p in zip(history, sorted(daily, key=lambda p: p.day), strict=True)
    )
    again = export_mlflow(services=services, key=simulated, tracking_uri=uri)
    assert (again.created, again.run_id) == (False, result.run_id)
    experiment = client.get_experiment_by_name(f"splitlab/{simulated}")
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_a_missing_mlflow_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, services: Services, simulated: str, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(MlflowUnavailableError, match=r"pip install 'splitlab\[mlflow\]'"):
        export_mlflow(services=services, key=simulated, tracking_uri=tmp_path.as_uri())


def test_cli_export_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from splitlab.cli import app

    home = tmp_path / "data"
    monkeypatch.setenv("SPLITLAB_HOME", str(home))
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_AUTH"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(home=home)
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    services = Services.open(settings)
    try:
        key = simulate(services, SCENARIO)
    finally:
        services.close()
    uri = (tmp_path / "mlruns").as_uri()
    runner = CliRunner()
    result = runner.invoke(app, ["export", "mlflow", key, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("logged: run ")
    again = runner.invoke(app, ["export", "mlflow", key, "--tracking-uri", uri])
    assert again.output.startswith("already logged: run ")
    contract = runner.invoke(app, ["export", key])  # still the YAML contract
    assert contract.exit_code == 0 and f"key: {key}" in contract.output
    missing = runner.invoke(app, ["export", "mlflow", "nope", "--tracking-uri", uri])
    assert missing.exit_code == 1 and "nope" in missing.output

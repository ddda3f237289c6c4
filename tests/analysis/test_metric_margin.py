"""A metric definition's own guardrail margin, absolute or relative: written in the threshold
forms (a bare number stays relative), stored and versioned (YAML contract and API, SQLite and
PostgreSQL app stores), listed by ``splitlab metrics list``, and inherited by an experiment
that sets no margin of its own — carried by the plan on its scale and judged by the guardrail
check, the decision engine and the readout on the absolute effect (DuckDB and PostgreSQL
warehouses), checked against a hand computation with scipy's Welch interval."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from scipy import stats as sp
from typer.testing import CliRunner

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.plan import definition_settings
from splitlab.analysis.snapshot import CheckName, Severity, Snapshot
from splitlab.cli import app
from splitlab.contracts import apply_contract, export_contract, parse_contract
from splitlab.decisions.engine import DecisionContext, recommend
from splitlab.decisions.policy import BUILTIN
from splitlab.decisions.readout import build_readout, metric_infos
from splitlab.domain import LOCAL_ADMIN, ExperimentSpec, MetricDefinition, ThresholdScale
from splitlab.domain.limits import STORED
from splitlab.errors import ValidationError
from splitlab.services import Services
from splitlab.store import metrics as repo
from splitlab.warehouse import Warehouse
from tests.analysis.builders import START, Dataset, Event, Unit

RELATIVE, ABSOLUTE = ThresholdScale.RELATIVE, ThresholdScale.ABSOLUTE
ERRORS = {"key": "errors", "kind": "count", "event": "error", "direction": "decrease"}


@pytest.mark.parametrize(
    ("written", "value", "scale"),
    [
        (0.05, 0.05, RELATIVE),  # a bare number: a fraction of control, as it always was
        ("5%", 0.05, RELATIVE),
        ({"absolute": 0.5}, 0.5, ABSOLUTE),
        ({"relative": 0.02}, 0.02, RELATIVE),
        ({"value": 3, "scale": "absolute"}, 3.0, ABSOLUTE),
    ],
)
def test_metric_margin_forms(written: Any, value: float, scale: ThresholdScale) -> None:
    metric = MetricDefinition.model_validate(ERRORS | {"margin": written})
    assert (metric.margin, metric.margin_scale) == (pytest.approx(value), scale)
    # the JSON round-trips, and leaves margin_scale out when relative (stored definitions,
    # fixtures and settings hashes keep their old shape)
    data = metric.model_dump(mode="json")
    assert ("margin_scale" in data) is (scale is ABSOLUTE)
    assert MetricDefinition.model_validate(data) == metric
    assert ("margin_scale" in definition_settings(metric)) is (scale is ABSOLUTE)


BAD = ["abc", "5", {"absolute": -1}, {"percent": 5}, {"absolute": "x"}, True, -0.1]
BAD += ["\uff15%", "5_0%", "nan%"]  # only ASCII digits: not a full-width 5, nor 5_0 read as 50


@pytest.mark.parametrize("written", BAD)
def test_metric_margin_forms_refused(written: Any) -> None:
    with pytest.raises(ValueError, match=r"margin|threshold|greater than"):
        MetricDefinition.model_validate(ERRORS | {"margin": written})


def test_a_scale_that_contradicts_the_form_is_refused() -> None:
    with pytest.raises(ValueError, match="margin_scale"):
        MetricDefinition.model_validate(ERRORS | {"margin": "5%", "margin_scale": "absolute"})


def test_a_scale_without_a_margin_is_refused_on_input_but_still_reads_back() -> None:
    """``margin_scale: absolute`` with no margin would be ignored (an experiment's guardrail
    then inherits the metric's margin on the metric's scale): refused, not silently dropped."""
    absolute = {"margin_scale": "absolute"}
    with pytest.raises(ValueError, match="margin_scale absolute needs a margin"):
        MetricDefinition.model_validate(ERRORS | absolute)
    with pytest.raises(ValueError, match="margin_scale absolute needs a margin"):
        MetricDefinition.model_validate(ERRORS | absolute | {"margin": None})
    spec = {
        "key": "margins",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "b", "weight": 0.5}],
        "metrics": {"guardrails": [{"key": "errors"} | absolute]},
    }
    with pytest.raises(ValueError, match="margin_scale absolute needs a margin"):
        ExperimentSpec.model_validate(spec)
    # relative is the default either way; what the store already holds still reads
    assert MetricDefinition.model_validate(ERRORS | {"margin_scale": "relative"}).margin is None
    stored = MetricDefinition.model_validate(ERRORS | absolute, context=STORED)
    assert stored.margin is None
    assert ExperimentSpec.model_validate(spec, context=STORED).metrics.guardrails[0].margin is None


def test_api_refuses_a_scale_without_a_margin_and_stores_nothing(
    client: TestClient, editor: dict[str, str]
) -> None:
    assert client.post("/api/metrics", json=ERRORS, headers=editor).status_code == 201
    refused = client.post(
        "/api/metrics", json=ERRORS | {"margin": None, "margin_scale": "absolute"}, headers=editor
    )
    assert refused.status_code == 422, refused.text
    assert "needs a margin" in refused.json()["error"]["message"]
    versions = client.get("/api/metrics/errors/versions", headers=editor).json()["versions"]
    assert [v["version"] for v in versions] == [1]


CONTRACT = """
metrics:
  - {key: errors, kind: count, event: error, direction: decrease, margin: {absolute: 0.5}}
  - {key: latency, kind: sum, event: page_load, direction: decrease, margin: "5%"}
  - {key: converted, kind: binary, event: purchase}
experiment:
  key: margins
  variants:
    - {key: control, weight: 0.5, is_control: true}
    - {key: b, weight: 0.5}
  metrics:
    primary: converted
    guardrails: [errors, latency]
"""


def test_yaml_contract_stores_exports_and_versions_the_scale(services: Services) -> None:
    with services.sessions.begin() as session:
        apply_contract(session=session, contract=parse_contract(CONTRACT), actor=LOCAL_ADMIN)
    with services.sessions() as session:
        stored = {r.key: repo.metric_from_row(r) for r in repo.list_metrics(session=session)}
        exported = yaml.safe_load(export_contract(session=session, key="margins"))
    assert (stored["errors"].margin, stored["errors"].margin_scale) == (0.5, ABSOLUTE)
    assert (stored["latency"].margin, stored["latency"].margin_scale) == (0.05, RELATIVE)
    metrics = {m["key"]: m for m in exported["metrics"]}
    assert (metrics["errors"]["margin"], metrics["errors"]["margin_scale"]) == (0.5, "absolute")
    assert metrics["latency"]["margin"] == 0.05 and "margin_scale" not in metrics["latency"]
    # back to relative: a new version whose stored scale is relative again (NULL)
    with services.sessions.begin() as session:
        row, created = repo.upsert_metric(
            session=session,
            definition=MetricDefinition.model_validate(ERRORS | {"margin": 0.5}),
            actor=LOCAL_ADMIN,
        )
        assert not created and row.version == 2 and row.margin_scale is None
    with services.sessions() as session:
        first = repo.get_metric_version(session=session, key="errors", version=1)
        current = repo.metric_from_row(repo.get_metric(session=session, key="errors"))
    assert first.margin_scale is ABSOLUTE and current.margin_scale is RELATIVE


def test_yaml_contract_refuses_a_bad_margin_by_its_path() -> None:
    bad = CONTRACT.replace("margin: {absolute: 0.5}", "margin: {absolute: -2}")
    with pytest.raises(ValidationError) as caught:
        parse_contract(bad)
    assert "metrics[0]" in str(caught.value) and "margin must be non-negative" in str(caught.value)


def test_api_accepts_and_shows_both_scales(client: TestClient, editor: dict[str, str]) -> None:
    made = client.post("/api/metrics", json=ERRORS | {"margin": {"absolute": 0.5}}, headers=editor)
    assert made.status_code == 201, made.text
    assert (made.json()["margin"], made.json()["margin_scale"]) == (0.5, "absolute")
    read = client.get("/api/metrics/errors", headers=editor).json()
    assert (read["margin"], read["margin_scale"]) == (0.5, "absolute")
    changed = client.post("/api/metrics", json=ERRORS | {"margin": "5%"}, headers=editor)
    assert changed.status_code == 200, changed.text
    assert changed.json()["margin"] == 0.05 and "margin_scale" not in changed.json()
    listed = client.get("/api/metrics", headers=editor).json()["metrics"]
    assert [(m["margin"], "margin_scale" in m) for m in listed] == [(0.05, False)]
    first = client.get("/api/metrics/errors?version=1", headers=editor).json()
    assert first["margin_scale"] == "absolute" and first["version"] == 1


@pytest.mark.parametrize(
    "written", [*BAD, {"absolute": 0.5, "relative": 0.1}, [0.5], {"absolute": None}]
)
def test_api_refuses_bad_margins_with_422(
    client: TestClient, editor: dict[str, str], written: Any
) -> None:
    response = client.post("/api/metrics", json=ERRORS | {"margin": written}, headers=editor)
    assert response.status_code == 422, response.text
    assert "margin" in response.text or "threshold" in response.text
    scale = client.post(
        "/api/metrics", json=ERRORS | {"margin": 0.5, "margin_scale": "percent"}, headers=editor
    )
    assert scale.status_code == 422


# ---------------------------------------------------------------- inherited by an experiment

# errors per unit (lower is better): control mean 2.0, b mean 2.6 — +0.6 errors, +30%
CONTROL = [2, 1, 3, 2, 2, 1, 3, 2, 2, 2] * 2
TREATMENT = [3, 2, 3, 2, 3, 2, 3, 2, 3, 3] * 2


def _dataset() -> Dataset:
    units, events = [], []
    arms = [("control", CONTROL), ("b", TREATMENT)]
    for variant, counts in arms:
        for k, count in enumerate(counts):
            uid = f"{variant}-{k}"
            exposed = START + timedelta(hours=k)
            units.append(Unit(uid, variant, exposed, {}))
            events += [
                Event(uid, "error", 1.0, exposed + timedelta(minutes=j + 1)) for j in range(count)
            ]
            if k % 3 == 0:
                events.append(Event(uid, "purchase", 1.0, exposed + timedelta(hours=1)))
    return Dataset(units, events)


def _analyse(warehouse: Warehouse, metric_margin: Any, guardrail: dict[str, Any]) -> Snapshot:
    definitions = {
        "errors": MetricDefinition.model_validate(ERRORS | {"margin": metric_margin}),
        "converted": MetricDefinition(key="converted", kind="binary", event="purchase"),
    }
    spec = ExperimentSpec.model_validate(
        {
            "key": "margins",
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True},
                {"key": "b", "weight": 0.5},
            ],
            "metrics": {"primary": "converted", "guardrails": [guardrail]},
            "start_at": START.isoformat(),
        }
    )
    plan = build_plan(spec, definitions)
    return run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())


def _check(snapshot: Snapshot) -> Any:
    (check,) = [c for c in snapshot.checks(CheckName.GUARDRAIL) if c.metric == "errors"]
    return check


def test_an_experiment_inherits_the_metrics_absolute_margin(warehouse: Warehouse) -> None:
    _dataset().write(warehouse, "margins")
    # by hand: Welch's interval on the per-unit error counts
    welch = sp.ttest_ind(TREATMENT, CONTROL, equal_var=False)
    low, high = welch.confidence_interval(0.95)
    effect = float(np.mean(TREATMENT) - np.mean(CONTROL))
    assert effect == pytest.approx(0.6)
    assert (low, high) == (pytest.approx(0.227694, abs=1e-6), pytest.approx(0.972306, abs=1e-6))

    inherited = _analyse(warehouse, {"absolute": 0.5}, {"key": "errors"})
    entry = next(m for m in inherited.settings["metrics"] if m["role"] == "guardrail")
    assert (entry["margin"], entry["margin_scale"]) == (0.5, "absolute")
    assert entry["definition"]["margin_scale"] == "absolute"
    row = inherited.result("errors", "b")
    assert (row.margin, row.margin_scale) == (0.5, ABSOLUTE)
    assert row.abs_effect == pytest.approx(effect, rel=1e-12)
    assert (row.abs_ci_low, row.abs_ci_high) == (pytest.approx(low), pytest.approx(high))
    # +0.6 errors > 0.5 allowed: breached on the absolute scale (harm = the absolute effect)
    check = _check(inherited)
    assert check.severity is Severity.CRITICAL and check.value == pytest.approx(0.6)
    assert "absolute: treatment ≤ control +0.5" in check.message
    # the decision engine reads the row's margin on its scale: beyond 0.5 errors, but the CI
    # (0.228 to 0.972) still reaches below it, so not yet significant
    decision = recommend(inherited, policy=BUILTIN, context=DecisionContext(status="stopped"))
    (reason,) = [r for r in decision.reasons if r.metric == "errors"]
    assert reason.code == "guardrail_beyond_margin"
    assert reason.evidence["scale"] == "absolute" and reason.evidence["margin"] == 0.5
    assert "0.5 (absolute)" in reason.message
    infos = metric_infos(inherited)
    assert infos["errors"].margin_scale == "absolute"
    readout = build_readout(snapshot=inherited, recommendation=decision)
    assert any("margin 0.5 (absolute)" in b for b in readout.section("results").bullets)

    # a loose absolute margin: within it, but the CI's upper end (0.972) is beyond 0.8
    loose = _check(_analyse(warehouse, {"absolute": 0.8}, {"key": "errors"}))
    assert loose.severity is Severity.WARNING and loose.value == pytest.approx(0.6)

    # the same number relative (as it always was): +30% of control is within 50%
    relative = _analyse(warehouse, 0.5, {"key": "errors"})
    rel = relative.result("errors", "b")
    assert (rel.margin, rel.margin_scale) == (0.5, RELATIVE)
    assert rel.rel_effect == pytest.approx(0.3, rel=1e-12)
    assert _check(relative).value == pytest.approx(0.3, rel=1e-12)
    assert _check(relative).severity is not Severity.CRITICAL
    assert "margin_scale" not in next(
        m for m in relative.settings["metrics"] if m["role"] == "guardrail"
    )

    # the experiment's own margin overrides the metric's, scale included
    own = _analyse(warehouse, {"absolute": 0.5}, {"key": "errors", "margin": "40%"})
    mine = own.result("errors", "b")
    assert (mine.margin, mine.margin_scale) == (pytest.approx(0.4), RELATIVE)
    assert _check(own).value == pytest.approx(0.3, rel=1e-12)


def test_cli_applies_and_lists_the_margin_on_its_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("SPLITLAB_AUTH", "off")
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT)
    applied = runner.invoke(app, ["apply", "-f", str(contract)])
    assert applied.exit_code == 0, applied.output
    listed = runner.invoke(app, ["metrics", "list"]).output.splitlines()
    lines = {line.split()[0]: line for line in listed}
    assert lines["errors"].endswith("margin 0.5 (absolute)")
    assert lines["latency"].endswith("margin 5.0%")
    assert "margin" not in lines["converted"]
    contract.write_text(CONTRACT.replace("{absolute: 0.5}", "{absolute: 0.5, relative: 1}"))
    refused = runner.invoke(app, ["apply", "-f", str(contract)])
    assert refused.exit_code != 0 and "margin" in refused.output

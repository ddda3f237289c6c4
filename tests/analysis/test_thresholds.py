"""Guardrail margins and minimum lifts, absolute or relative: how they are written (a bare
number stays relative, as margins always were), stored (YAML contract round trip, both
app-store backends), carried in the snapshot's settings and overall rows, and judged by the
guardrail health check on their own scale (DuckDB and PostgreSQL warehouses)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.snapshot import CheckName, Severity, Snapshot
from splitlab.contracts import apply_contract, export_contract, parse_contract
from splitlab.domain import LOCAL_ADMIN, GuardrailRef, Threshold, ThresholdScale
from splitlab.errors import ValidationError
from splitlab.services import Services
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, generate, spec

DEFINITIONS = {m.key: m for m in METRICS}
RELATIVE, ABSOLUTE = ThresholdScale.RELATIVE, ThresholdScale.ABSOLUTE


@pytest.mark.parametrize(
    ("written", "value", "scale"),
    [
        (0.05, 0.05, RELATIVE),  # a bare number: a fraction of control, as before
        (1, 1.0, RELATIVE),
        ("5%", 0.05, RELATIVE),
        (" 12.5% ", 0.125, RELATIVE),
        ({"absolute": 0.0043}, 0.0043, ABSOLUTE),
        ({"relative": 0.02}, 0.02, RELATIVE),
        ({"value": 3, "scale": "absolute"}, 3.0, ABSOLUTE),
    ],
)
def test_threshold_forms(written: Any, value: float, scale: ThresholdScale) -> None:
    threshold = Threshold.model_validate(written)
    assert (threshold.value, threshold.scale) == (pytest.approx(value), scale)
    guard = GuardrailRef.model_validate({"key": "m", "margin": written})
    assert (guard.margin, guard.margin_scale) == (pytest.approx(value), scale)


@pytest.mark.parametrize(
    "written",
    ["0.0043", "5", "abc%", "-5%", {"absolute": -1}, {"percent": 5}, {"absolute": "x"}, True],
)
def test_threshold_forms_refused(written: Any) -> None:
    with pytest.raises(ValueError):
        Threshold.model_validate(written)
    with pytest.raises(ValueError):
        GuardrailRef.model_validate({"key": "m", "margin": written})


def test_guardrail_json_keeps_its_old_shape_when_relative() -> None:
    assert GuardrailRef(key="m", margin=0.01).model_dump() == {"key": "m", "margin": 0.01}
    absolute = GuardrailRef.model_validate({"key": "m", "margin": {"absolute": 0.2}})
    assert absolute.model_dump(mode="json") == {
        "key": "m",
        "margin": 0.2,
        "margin_scale": "absolute",
    }
    assert GuardrailRef.model_validate(absolute.model_dump(mode="json")) == absolute
    with pytest.raises(ValueError, match="margin_scale"):
        GuardrailRef.model_validate({"key": "m", "margin": "5%", "margin_scale": "absolute"})


CONTRACT = """
metrics:
  - {key: conversion, kind: binary, event: purchase}
  - {key: orders, kind: count, event: purchase}
  - {key: latency, kind: sum, event: page_load, direction: decrease, margin: 0.05}
experiment:
  key: thresholds
  variants:
    - {key: control, weight: 0.5, is_control: true}
    - {key: fast, weight: 0.5}
  metrics:
    primary: conversion
    secondary: [orders]
    guardrails:
      - latency
      - {key: orders, margin: {absolute: 0.25}}
  plan: {min_lift: "2%", min_lifts: {orders: {absolute: 0.1}}}
"""


def test_contract_round_trip_keeps_the_scales(services: Services) -> None:
    with services.sessions.begin() as session:
        apply_contract(session=session, contract=parse_contract(CONTRACT), actor=LOCAL_ADMIN)
    with services.sessions() as session:
        exported = export_contract(session=session, key="thresholds")
    experiment = yaml.safe_load(exported)["experiment"]
    assert experiment["metrics"]["guardrails"] == [
        {"key": "latency", "margin": None},
        {"key": "orders", "margin": 0.25, "margin_scale": "absolute"},
    ]
    assert experiment["plan"]["min_lift"] == {"value": 0.02, "scale": "relative"}
    assert experiment["plan"]["min_lifts"] == {"orders": {"value": 0.1, "scale": "absolute"}}
    again, first = parse_contract(exported).experiment, parse_contract(CONTRACT).experiment
    assert (again.metrics, again.plan) == (first.metrics, first.plan)


def test_min_lifts_must_name_the_experiments_metrics() -> None:
    with pytest.raises(ValidationError, match="nope"):
        build_plan(spec(min_lifts={"nope": "1%"}), DEFINITIONS)


@pytest.fixture
def snapshot(warehouse: Warehouse) -> Snapshot:
    generate(seed=7, n_units=900).write(warehouse, "checkout")
    guardrails = [
        {"key": "latency_p90", "margin": "10%"},
        {"key": "orders", "margin": {"absolute": 0.05}},
    ]
    plan = build_plan(
        spec(guardrails=guardrails, min_lift="2%", min_lifts={"revenue": {"absolute": 1.5}}),
        DEFINITIONS,
    )
    return run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())


def _guardrail(snapshot: Snapshot, metric: str) -> Any:
    (check,) = [c for c in snapshot.checks(CheckName.GUARDRAIL) if c.metric == metric]
    return check


def test_settings_carry_each_threshold_and_its_scale(snapshot: Snapshot) -> None:
    entries = {m["definition"]["key"]: m for m in snapshot.settings["metrics"]}
    assert entries["latency_p90"]["margin"] == pytest.approx(0.1)
    assert "margin_scale" not in entries["latency_p90"]  # relative, as before
    assert entries["orders"]["role"] == "secondary"  # first role wins: no guardrail margin
    assert entries["converted"]["min_lift"] == pytest.approx(0.02)
    assert entries["converted"]["min_lift_scale"] == "relative"
    assert (entries["revenue"]["min_lift"], entries["revenue"]["min_lift_scale"]) == (
        1.5,
        "absolute",
    )
    assert "min_lift" not in entries["latency_p90"]  # a guardrail takes no plan-wide lift


def test_overall_rows_show_thresholds_on_their_scale(snapshot: Snapshot) -> None:
    latency = snapshot.result("latency_p90", "b").to_json()
    assert (latency["margin"], latency["margin_scale"]) == (pytest.approx(0.1), "relative")
    revenue = snapshot.result("revenue", "b").to_json()
    assert (revenue["min_lift"], revenue["min_lift_scale"]) == (1.5, "absolute")
    converted = snapshot.result("converted", "b").to_json()
    assert "margin" not in converted and converted["min_lift_scale"] == "relative"
    segment_rows = [r.to_json() for r in snapshot.results if r.segment is not None]
    assert all("min_lift" not in row and "margin" not in row for row in segment_rows)


def test_absolute_margin_is_judged_on_the_absolute_effect(warehouse: Warehouse) -> None:
    generate(seed=7, n_units=900).write(warehouse, "checkout")
    results = {}
    for margin in ({"absolute": 0.05}, {"absolute": 5.0}, 0.05):
        guardrails = [{"key": "latency_p90", "margin": margin}]
        plan = build_plan(spec(guardrails=guardrails), DEFINITIONS)
        results[str(margin)] = run_analysis(
            warehouse=warehouse, plan=plan, watermark=warehouse.watermark()
        )
    tight = results[str({"absolute": 0.05})]
    row = tight.result("latency_p90", "b")
    assert row.abs_effect is not None and row.abs_ci_high is not None
    check = _guardrail(tight, "latency_p90")
    # decrease is better: harm is treatment − control in ms; worst case the CI's upper end
    assert check.value == pytest.approx(row.abs_effect, rel=1e-12)
    expected = (
        Severity.CRITICAL
        if row.abs_effect > 0.05
        else Severity.WARNING
        if row.abs_ci_high > 0.05
        else Severity.INFO
    )
    assert check.severity is expected
    assert "absolute: treatment ≤ control +0.05" in check.message
    wide = _guardrail(results[str({"absolute": 5.0})], "latency_p90")
    assert wide.value == check.value
    assert (wide.severity is Severity.INFO) is (row.abs_ci_high <= 5.0)
    # the same number as a bare margin is a fraction of control, judged on the relative effect
    relative = _guardrail(results["0.05"], "latency_p90")
    assert relative.value == pytest.approx(row.rel_effect, rel=1e-12)
    assert "0.95 × control" not in relative.message and "1.05 × control" in relative.message

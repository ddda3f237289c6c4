"""Every scenario generates, imports and analyses, and the analysis recovers its truth
(the documented seed of each scenario, at the sizes of ``conftest.test_units``)."""

from __future__ import annotations

from typing import Any

import pytest

from splitlab.simulate import scenario_names

from .conftest import units_for

SCENARIOS = scenario_names()


def overall(snapshot: dict[str, Any], metric: str, variant: str) -> dict[str, Any]:
    (row,) = [
        r
        for r in snapshot["results"]
        if r["metric"] == metric and r["variant"] == variant and r["segment"] is None
    ]
    return row


def severities(snapshot: dict[str, Any], check: str) -> set[str]:
    return {h["severity"] for h in snapshot["health"] if h["check"] == check}


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_generates_and_analyses(name: str, simulated: Any) -> None:
    _, runs, snapshots = simulated
    data, snapshot = runs[name], snapshots[name]
    units = {u["variant"]: u["n"] for u in snapshot["units"]}
    assert (
        sum(units.values())
        == data.exposures.num_rows
        == units_for(name) - sum(data.dropped.values())
    )
    metrics = {r["metric"] for r in snapshot["results"]}
    assert metrics == {m.key for m in data.scenario.metrics}
    (truth_path,) = [name]  # the truth names the experiment and every metric
    assert data.truth["experiment"] == truth_path
    assert set(data.truth["metrics"]) == metrics


@pytest.mark.parametrize("name", SCENARIOS)
def test_primary_effect_ci_covers_the_true_effect(name: str, simulated: Any) -> None:
    _, runs, snapshots = simulated
    truth = runs[name].truth
    primary = truth["primary"]
    for variant in truth["variants"]:
        if variant == truth["control"]:
            continue
        true_effect = truth["metrics"][primary]["overall"][variant]["abs_effect"]
        row = overall(snapshots[name], primary, variant)
        assert row["abs_ci_low"] <= true_effect <= row["abs_ci_high"], (variant, row)


def test_srm_invalid_raises_the_srm_check(simulated: Any) -> None:
    _, _, snapshots = simulated
    assert severities(snapshots["srm_invalid"], "srm") == {"critical"}
    for name in ("aa_null", "global_positive", "multivariant", "canary_regression"):
        assert severities(snapshots[name], "srm") == {"info"}, name


def test_aa_null_raises_nothing_critical(simulated: Any) -> None:
    _, _, snapshots = simulated
    snapshot = snapshots["aa_null"]
    assert [h for h in snapshot["health"] if h["severity"] == "critical"] == []
    for row in snapshot["results"]:
        if row["segment"] is None:
            assert row["abs_ci_low"] <= 0 <= row["abs_ci_high"], row


def test_segment_only_win_sits_in_its_segment(simulated: Any) -> None:
    _, runs, snapshots = simulated
    truth = runs["segment_only_win"].truth["metrics"]["sw-conversion"]["segments"]["country"]
    rows = {
        r["segment"]["value"]: r
        for r in snapshots["segment_only_win"]["results"]
        if r["metric"] == "sw-conversion" and r["segment"] and r["segment"]["name"] == "country"
    }
    assert set(rows) == set(truth)
    for country, row in rows.items():
        effect = truth[country]["treatment"]["abs_effect"]
        assert row["abs_ci_low"] <= effect <= row["abs_ci_high"], country
        if country == "DE":
            assert effect > 0.02 and row["abs_ci_low"] > 0
        else:
            assert effect == pytest.approx(0, abs=1e-12)


def test_guardrails_and_regressions_are_caught(simulated: Any) -> None:
    _, _, snapshots = simulated
    for name, metric in (("guardrail_harm", "gh-load-ms"), ("latency_regression", "lr-latency-ms")):
        flagged = [
            h
            for h in snapshots[name]["health"]
            if h["check"] == "guardrail" and h.get("metric") == metric
        ]
        assert flagged and flagged[0]["severity"] != "info", (name, flagged)
    latency = overall(snapshots["latency_regression"], "lr-latency-ms", "edge_v2")
    assert latency["treatment_mean"] > 1.25 * latency["control_mean"]
    canary = overall(snapshots["canary_regression"], "cr-error-rate", "canary")
    assert canary["rel_ci_low"] > 0.5  # clearly above the stable build's error rate


def test_cuped_uses_the_pre_period(simulated: Any) -> None:
    _, _, snapshots = simulated
    row = overall(snapshots["aa_null"], "aa-sessions", "treatment")
    assert row.get("variance_reduction", 0) > 0.1, row

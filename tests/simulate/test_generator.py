"""Scenario contracts and the generator: validation with field paths, determinism by seed,
assignment through splitlab.assignment, timestamps inside the allowed windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow.compute as pc
import pytest

from splitlab.assignment import assign
from splitlab.assignment.specs import config_from_spec
from splitlab.errors import ValidationError
from splitlab.simulate import generate, load_scenario, parse_scenario, scenario_names

START = datetime(2024, 5, 1, tzinfo=UTC)
ISSUE_SCENARIOS = {
    "aa_null",
    "global_positive",
    "guardrail_harm",
    "segment_only_win",
    "srm_invalid",
    "low_power_noisy",
    "delayed_effect",
    "novelty_effect",
    "heavy_tail_revenue",
    "ratio_metric",
    "multivariant",
    "ml_model_comparison",
    "prompt_ab",
    "latency_regression",
    "canary_regression",
    "factorial_2x2",
    "interacting_experiments",
}


def test_every_scenario_of_the_issue_is_shipped_and_valid() -> None:
    assert set(scenario_names()) == ISSUE_SCENARIOS
    for name in scenario_names():
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.spec().metrics.primary in {m.key for m in scenario.metrics}


def test_multivariant_declares_the_figures_of_the_issue() -> None:
    truth = generate("multivariant", units=100, start=START).truth["metrics"]
    expected = {
        "mv-conversion": (0.12, 0.15, 0.13),
        "mv-order-value": (48.00, 54.50, 50.20),
        "mv-session-minutes": (3.8, 4.1, 3.9),
    }
    for metric, means in expected.items():
        arms = ("control", "treatment_a", "treatment_b")
        got = [truth[metric]["overall"][v]["mean"] for v in arms]
        assert got == pytest.approx(means, rel=1e-6), metric


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = generate("global_positive", units=2_000, seed=5, start=START)
    again = generate("global_positive", units=2_000, seed=5, start=START)
    other = generate("global_positive", units=2_000, seed=6, start=START)
    assert first.exposures.equals(again.exposures)
    assert first.events.equals(again.events)
    assert first.truth == again.truth
    assert not first.events.equals(other.events)


def test_units_get_the_variant_the_assignment_engine_gives() -> None:
    data = generate("multivariant", units=3_000, start=START)
    config = config_from_spec(data.spec)
    rows = data.exposures.slice(0, 200).to_pylist()
    for row in rows:
        assert assign(config, row["userKey"]).variant == row["variantKey"]
    counts = data.exposures.group_by("variantKey").aggregate([("userKey", "count")]).to_pydict()
    assert sum(counts["userKey_count"]) == 3_000


def test_srm_invalid_loses_three_percent_of_treatment_after_assignment() -> None:
    data = generate("srm_invalid", units=40_000, start=START)
    lost = data.dropped["treatment"]
    counts = data.exposures.group_by("variantKey").aggregate([("userKey", "count")])
    arms = dict(zip(*counts.to_pydict().values(), strict=True))
    assert lost == pytest.approx(0.03 * (arms["treatment"] + lost), rel=0.15)
    assert data.exposures.num_rows == 40_000 - lost


def test_events_fall_after_exposure_within_the_run_and_pre_period() -> None:
    data = generate("aa_null", units=3_000, days=10, start=START)
    exposed = dict(
        zip(
            data.exposures["userKey"].to_pylist(),
            data.exposures["occurredAt"].to_pylist(),
            strict=True,
        )
    )
    end = START + timedelta(days=10)
    pre = timedelta(days=14)
    in_run = pre_period = 0
    for unit, variant, at in zip(
        data.events["userKey"].to_pylist(),
        data.events["variantKey"].to_pylist(),
        data.events["occurredAt"].to_pylist(),
        strict=True,
    ):
        if variant is None:  # pre-period (CUPED covariate) events carry no variant
            assert exposed[unit] - pre <= at < exposed[unit]
            pre_period += 1
        else:
            assert exposed[unit] < at < end
            in_run += 1
    assert in_run > 0 and pre_period > 0
    ids = data.events["eventId"]
    assert pc.count_distinct(ids).as_py() == len(ids)


def test_time_varying_effects_follow_days_since_exposure() -> None:
    """Novelty: units exposed late (short windows) see a larger average lift than early ones."""
    truth = generate("novelty_effect", units=100, start=START).truth
    assert truth["metrics"]["nv-clicks"]["overall"]["treatment"]["rel_effect"] == pytest.approx(
        0.1876, abs=0.002
    )
    data = generate("novelty_effect", units=20_000, start=START)
    exposures = data.exposures.to_pydict()
    late = {
        u
        for u, at in zip(exposures["userKey"], exposures["occurredAt"], strict=True)
        if at > START + timedelta(days=18)
    }
    clicks = {}
    for unit in data.events["userKey"].to_pylist():
        clicks[unit] = clicks.get(unit, 0) + 1

    def lift(units: set[str]) -> float:
        means = []
        for arm in ("control", "treatment"):
            members = [
                u
                for u, v in zip(exposures["userKey"], exposures["variantKey"], strict=True)
                if v == arm and u in units
            ]
            means.append(np.mean([clicks.get(u, 0) for u in members]))
        return float(means[1] / means[0] - 1)

    everyone = set(exposures["userKey"])
    assert lift(late) > lift(everyone) + 0.05


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ("streams: {purchase: {occurrence: once, rate: 1.5}}", "streams.purchase"),
        ("streams: {purchase: {occurrence: poisson, rate: -1}}", "streams.purchase.rate"),
        ("effects: [{variant: nobody, stream: purchase, lift: 0.1}]", "effects[0].variant"),
        (
            "effects: [{variant: treatment, stream: purchase, param: colour, lift: 0.1}]",
            "effects[0].param",
        ),
        ("breakage: {variant: treatment, drop_fraction: 2}", "breakage.drop_fraction"),
    ],
)
def test_invalid_scenarios_name_the_field(patch: str, path: str) -> None:
    base = """
name: mine
description: a test
streams: {purchase: {occurrence: once, rate: 0.1}}
metrics: [{key: conv, kind: binary, event: purchase}]
experiment:
  hypothesis: h
  variants: [{key: control, weight: 0.5, is_control: true}, {key: treatment, weight: 0.5}]
  metrics: {primary: conv}
"""
    text = base + patch + "\n"
    if patch.startswith("streams"):
        text = base.replace("streams: {purchase: {occurrence: once, rate: 0.1}}\n", patch + "\n")
    with pytest.raises(ValidationError) as caught:
        parse_scenario(text)
    assert path in [d["path"] for d in caught.value.details], caught.value.message
    assert parse_scenario(base).name == "mine"

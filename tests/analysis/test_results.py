"""Results equal a direct computation with splitlab.stats on hand-built per-unit data (read
from the snapshot's JSON form, so the keys it promises are pinned too)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pytest

from splitlab import stats
from splitlab.analysis import build_plan, run_analysis
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, generate, per_unit, spec
from tests.analysis.expected import expected_test, segment_labels, units_until

DEFINITIONS = {m.key: m for m in METRICS}
FIELDS = (
    "control_mean",
    "treatment_mean",
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "rel_effect",
    "rel_ci_low",
    "rel_ci_high",
    "statistic",
    "p_value",
    "df",
)


def assert_matches(entry: dict[str, Any], result: Any, n_c: float, n_t: float) -> None:
    assert entry["control_n"] == n_c
    assert entry["treatment_n"] == n_t
    assert entry["reason"] == str(result.reason)
    cuped = isinstance(result, stats.CupedResult)
    assert ("control_mean_adjusted" in entry) is cuped
    for name in FIELDS:
        want = float(getattr(result, name))
        # with CUPED the test's means are the adjusted ones; the raw means are checked in
        # test_cuped_readout.py
        got = entry[f"{name}_adjusted" if cuped and name.endswith("_mean") else name]
        if not math.isfinite(want):
            assert got is None, name
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), name


@pytest.fixture
def analysed(warehouse: Warehouse) -> tuple[Any, dict[str, Any]]:
    dataset = generate(seed=3, n_units=700)
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(segments=["country"]), DEFINITIONS, top_n=3)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    return dataset, snapshot.to_json()


def test_overall_and_segments_match_direct_computation(analysed: tuple[Any, Any]) -> None:
    dataset, snapshot = analysed
    units = dataset.included()
    labels = segment_labels(units, "country", 3)
    assert set(labels.values()) == {"de", "fr", "us", "other"} or len(set(labels.values())) == 4
    checked = 0
    for entry in snapshot["results"]:
        metric = DEFINITIONS[entry["metric"]]
        cell = units
        if entry["segment"] is not None:
            value = entry["segment"]["value"]
            cell = [u for u in units if labels[u.unit_id] == value]
        result, n_c, n_t = expected_test(dataset, metric, cell, "control", "b")
        assert_matches(entry, result, n_c, n_t)
        if metric.cuped_days:
            assert entry["variance_reduction"] == pytest.approx(
                float(result.variance_reduction), rel=1e-9
            )
        checked += 1
    # 5 metrics × (overall + 4 segment values) × 1 treatment
    assert checked == 5 * 5
    assert {r["metric"] for r in snapshot["results"]} == set(DEFINITIONS)


def test_daily_cumulative_matches_direct_computation(analysed: tuple[Any, Any]) -> None:
    dataset, snapshot = analysed
    units = dataset.included()
    assert snapshot["days"] == [f"2024-03-0{d}" for d in range(1, 7)]
    daily = snapshot["daily"]
    assert {e["metric"] for e in daily} == set(DEFINITIONS) - {"latency_p90"}
    assert len(daily) == 4 * 6
    for entry in daily:
        cohort = units_until(units, date.fromisoformat(entry["day"]))
        result, n_c, n_t = expected_test(
            dataset, DEFINITIONS[entry["metric"]], cohort, "control", "b"
        )
        assert_matches(entry, result, n_c, n_t)
    last = next(e for e in daily if e["day"] == "2024-03-06" and e["metric"] == "orders")
    overall = next(r for r in snapshot["results"] if r["metric"] == "orders" and not r["segment"])
    assert last["p_value"] == pytest.approx(overall["p_value"], rel=1e-12)


def test_exclusions_are_counted_not_analysed(analysed: tuple[Any, Any]) -> None:
    dataset, snapshot = analysed
    for row in snapshot["units"]:
        variant = row["variant"]
        assert row["n"] == sum(1 for u in dataset.included() if u.variant == variant)
        assert row["excluded"] == sum(
            1 for u in dataset.units if u.excluded and u.variant == variant
        )
    assert sum(r["excluded"] for r in snapshot["units"]) > 0


def test_windows_capping_and_filters_change_per_unit_values(analysed: tuple[Any, Any]) -> None:
    """Guard against a builder that ignores the options: they must matter on this data."""
    dataset, _ = analysed
    orders = per_unit(dataset, DEFINITIONS["orders"])
    assert max(y for y, _ in orders.values()) == 6  # absolute cap reached
    revenue = DEFINITIONS["revenue"]
    uncapped = per_unit(dataset, revenue.model_copy(update={"capping": None}))
    capped = per_unit(dataset, revenue)
    assert sum(y for y, _ in capped.values()) < sum(y for y, _ in uncapped.values())
    unwindowed = per_unit(dataset, revenue.model_copy(update={"window_hours": None}))
    assert sum(y for y, _ in unwindowed.values()) > sum(y for y, _ in uncapped.values())


@pytest.mark.parametrize("engine", ["sequential", "bayesian"])
def test_engines_use_linearised_arms(warehouse: Warehouse, engine: str) -> None:
    dataset = generate(seed=5, n_units=500)
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(engine=engine), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    entry = snapshot.result("orders", "b")
    values = per_unit(dataset, DEFINITIONS["orders"])
    arms = [
        stats.SampleStats.from_values(
            np.array([values[u.unit_id][0] for u in dataset.included() if u.variant == v])
        )
        for v in ("control", "b")
    ]
    if engine == "sequential":
        want = stats.sequential_test(arms[0], arms[1])
        assert entry.p_value == pytest.approx(float(want.p_value), rel=1e-9)
        assert entry.abs_ci_low == pytest.approx(float(want.abs_ci_low), rel=1e-9)
        assert entry.abs_ci_high == pytest.approx(float(want.abs_ci_high), rel=1e-9)
        assert "chance_to_win" not in entry.to_json()
    else:
        want_b = stats.bayesian_test(arms[0], arms[1])
        assert entry.chance_to_win == pytest.approx(float(want_b.chance_to_win), rel=1e-9)
        assert entry.risk_treatment == pytest.approx(float(want_b.risk_treatment), rel=1e-9)
        assert "p_value_adjusted" not in entry.to_json()
        latency = snapshot.result("latency_p90", "b")
        assert latency.chance_to_win is not None
        assert 0 <= latency.chance_to_win <= 1  # lower is better: flipped, still a probability


def test_abn_correction_and_omnibus(warehouse: Warehouse) -> None:
    dataset = generate(seed=7, n_units=900, variants=("control", "b", "c"), lift=0.2)
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(variants=("control", "b", "c")), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    overall = list(snapshot.overall())
    assert len(overall) == 5 * 2
    p_values = np.array([r.p_value for r in overall])
    adjusted = np.array([r.p_value_adjusted for r in overall])
    np.testing.assert_allclose(adjusted, stats.holm(p_values), rtol=1e-12)
    tests = {o.metric: o for o in snapshot.omnibus}
    assert set(tests) == {"converted", "orders", "revenue"}
    values = per_unit(dataset, DEFINITIONS["orders"])
    groups = [
        [values[u.unit_id][0] for u in dataset.included() if u.variant == v]
        for v in ("control", "b", "c")
    ]
    from scipy.stats import f_oneway

    assert tests["orders"].p_value == pytest.approx(f_oneway(*groups).pvalue, rel=1e-9)
    assert tests["converted"].test == "chi2" and tests["orders"].test == "anova"


def test_power_mde_and_projection(warehouse: Warehouse) -> None:
    dataset = generate(seed=9, n_units=600)
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(mde=0.05), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    entry = snapshot.result("converted", "b")
    n_c, n_t, p_c = entry.control_n, entry.treatment_n, entry.control_mean
    assert n_c is not None and n_t is not None and p_c is not None
    want = stats.achieved_power(0.05, n_c, baseline=p_c, relative=True, ratio=n_t / n_c)
    assert entry.power == pytest.approx(float(want), rel=1e-9)
    mde = stats.mde_for_sample_size(n_c, baseline=p_c, relative=True, ratio=n_t / n_c)
    assert entry.mde == pytest.approx(float(mde), rel=1e-9)
    needed = stats.sample_size_proportions(p_c, 0.05, relative=True, ratio=n_t / n_c).n_control
    assert entry.n_required == float(needed)
    assert entry.days_remaining == math.ceil((float(needed) - n_c) / (n_c / 6))

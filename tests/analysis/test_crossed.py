"""Crossed segments (``plan.crossed``: two attributes at once), the correction across a
segment's cells, and the heterogeneity test on the cells' effects — checked against scipy and
statsmodels on the per-unit values, on DuckDB and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.snapshot import Snapshot
from splitlab.domain import ExperimentSpec
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, Dataset, generate, per_unit, same_numbers, spec

DEFINITIONS = {m.key: m for m in METRICS}


def _with_platform(dataset: Dataset) -> Dataset:
    rng = np.random.default_rng(1)
    for unit in dataset.units:
        platform = str(rng.choice(["ios", "android", "web"], p=[0.5, 0.3, 0.2]))
        unit.attributes = {**unit.attributes, "platform": platform, "tier": platform == "ios"}
    return dataset


@pytest.fixture
def analysed(warehouse: Warehouse) -> tuple[Dataset, Snapshot]:
    dataset = _with_platform(generate(seed=12, n_units=1500, countries=("de", "fr", "us")))
    dataset.write(warehouse, "checkout")
    plan = build_plan(
        spec(segments=["tier"], crossed=[["country", "platform"]]), DEFINITIONS, top_n=3
    )
    return dataset, run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())


def _arm(dataset: Dataset, metric: str, variant: str, keep: Any) -> np.ndarray:
    values = per_unit(dataset, DEFINITIONS[metric])
    return np.array(
        [
            values[u.unit_id][0]
            for u in dataset.included()
            if u.variant == variant and keep(u.attributes)
        ],
        dtype=float,
    )


def _cell(attributes: dict[str, Any], country: str, platform: str) -> bool:
    return attributes.get("country", "(none)") == country and attributes["platform"] == platform


def test_crossed_cells_are_their_own_populations(analysed: tuple[Dataset, Snapshot]) -> None:
    dataset, snapshot = analysed
    crossed = [r for r in snapshot.results if r.segment and r.segment.name == "country × platform"]
    values = {r.segment.value for r in crossed if r.segment}
    assert "de × ios" in values and "fr × web" in values
    row = next(r for r in crossed if r.segment and r.segment.value == "de × ios")
    assert row.metric == "converted"
    c = _arm(dataset, "converted", "control", lambda a: _cell(a, "de", "ios"))
    t = _arm(dataset, "converted", "b", lambda a: _cell(a, "de", "ios"))
    z, p = proportions_ztest([t.sum(), c.sum()], [t.size, c.size])
    assert (row.control_n, row.treatment_n) == (c.size, t.size)
    assert row.statistic == pytest.approx(z, rel=1e-9)
    assert row.p_value == pytest.approx(p, rel=1e-9)
    orders = next(
        r
        for r in crossed
        if r.metric == "orders" and r.segment and r.segment.value == "us × android"
    )
    oc = _arm(dataset, "orders", "control", lambda a: _cell(a, "us", "android"))
    ot = _arm(dataset, "orders", "b", lambda a: _cell(a, "us", "android"))
    welch = scipy_stats.ttest_ind(ot, oc, equal_var=False)
    assert orders.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    # quantiles are not computed for crossed cells; every cell sums to the whole
    assert not any(r.metric == "latency_p90" for r in crossed)
    converted = [r for r in crossed if r.metric == "converted"]
    overall = snapshot.result("converted", "b")
    assert sum(r.control_n or 0 for r in converted) == overall.control_n
    assert snapshot.settings["crossed"] == [["country", "platform"]]


def test_correction_across_the_cells(analysed: tuple[Dataset, Snapshot]) -> None:
    _, snapshot = analysed
    for name in ("country × platform", "tier"):
        rows = [
            r
            for r in snapshot.results
            if r.segment and r.segment.name == name and r.metric == "orders"
        ]
        raw = np.array([r.p_value for r in rows], dtype=float)
        _, holm, _, _ = multipletests(raw, method="holm")
        assert [r.p_value_adjusted_cells for r in rows] == pytest.approx(list(holm), rel=1e-12)
    assert all(r.p_value_adjusted_cells is None for r in snapshot.overall())


def _variance(row: Any, alpha: float = 0.05) -> float:
    crit = (
        scipy_stats.norm.ppf(1 - alpha / 2)
        if row.df is None
        else scipy_stats.t.ppf(1 - alpha / 2, row.df)
    )
    return float(((row.abs_ci_high - row.abs_ci_low) / (2 * crit)) ** 2)


def test_cochran_q_across_cells(analysed: tuple[Dataset, Snapshot]) -> None:
    _, snapshot = analysed
    rows = [
        r
        for r in snapshot.results
        if r.segment and r.segment.name == "country × platform" and r.metric == "revenue"
    ]
    effects = np.array([r.abs_effect for r in rows], dtype=float)
    variances = np.array([_variance(r) for r in rows])
    expected = combine_effects(effects, variances)
    statistic, p_value = expected.test_homogeneity()[:2]
    (test,) = [
        h
        for h in snapshot.heterogeneity
        if h.metric == "revenue" and h.segment == "country × platform"
    ]
    assert test.test == "cochran_q" and test.cells == len(rows) == expected.k
    assert test.statistic == pytest.approx(expected.q, rel=1e-9)
    assert test.statistic == pytest.approx(statistic, rel=1e-9)
    assert test.p_value == pytest.approx(p_value, rel=1e-9)
    assert test.df == len(rows) - 1
    assert test.i_squared == pytest.approx(max(0.0, expected.i2), abs=1e-12)


def test_interaction_z_for_two_cells(analysed: tuple[Dataset, Snapshot]) -> None:
    _, snapshot = analysed
    rows = [
        r
        for r in snapshot.results
        if r.segment and r.segment.name == "tier" and r.metric == "converted"
    ]
    assert [r.segment.value for r in rows if r.segment] == ["true", "false"]  # by frequency
    first, second = rows
    z = (second.abs_effect - first.abs_effect) / np.sqrt(_variance(first) + _variance(second))
    (test,) = [h for h in snapshot.heterogeneity if h.metric == "converted" and h.segment == "tier"]
    assert test.test == "interaction_z" and test.cells == 2
    assert test.statistic == pytest.approx(z, rel=1e-9)
    assert test.p_value == pytest.approx(2 * scipy_stats.norm.sf(abs(z)), rel=1e-9)
    # every segment × metric × treatment has one test, in metric order
    keys = [(h.metric, h.segment) for h in snapshot.heterogeneity]
    assert len(keys) == len(set(keys)) == 2 * len(DEFINITIONS) - 1  # no crossed quantile


def test_a_crossed_pair_needs_two_attributes() -> None:
    for pair in (["a"], ["a", "a"], ["a", "b", "c"]):
        with pytest.raises(ValueError):
            ExperimentSpec.model_validate({"key": "k", "plan": {"crossed": [pair]}})


def test_without_segments_no_heterogeneity(warehouse: Warehouse) -> None:
    generate(seed=3, n_units=300).write(warehouse, "checkout")
    plan = build_plan(spec(), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    assert "heterogeneity" not in snapshot.to_json() and "crossed" not in snapshot.settings


def test_without_the_daily_series_the_results_are_the_same(warehouse: Warehouse) -> None:
    """``AnalysisPlan.daily=False`` (the benchmark's peer-work run) drops the daily series and
    its checks, and changes no result."""
    from dataclasses import replace

    generate(seed=3, n_units=400).write(warehouse, "checkout")
    plan = build_plan(spec(segments=["country"], mde=0.05), DEFINITIONS)
    full = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    lean = run_analysis(
        warehouse=warehouse, plan=replace(plan, daily=False), watermark=warehouse.watermark()
    )
    assert full.daily and full.days and not lean.daily and not lean.days
    assert lean.settings == full.settings | {"daily": False}

    def numbers(snapshot: Snapshot) -> list[dict[str, Any]]:
        return [{**r.to_json(), "days_remaining": None} for r in snapshot.results]

    assert same_numbers(numbers(lean), numbers(full))

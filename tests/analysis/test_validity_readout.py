"""What the validity suite acts on in the readout: the plan's relative-CI method
(``plan.relative_ci``) and the warning when a Bayesian result is read before its horizon."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from splitlab import stats
from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.render import render_markdown, render_table
from splitlab.analysis.snapshot import HealthCheck, ResultRow, Snapshot
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, generate, per_unit, spec

DEFINITIONS = {m.key: m for m in METRICS}


def _analyse(warehouse: Warehouse, seed: int = 5, **options: Any) -> Snapshot:
    dataset = generate(seed=seed, n_units=500)  # six days of exposures
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(**options), DEFINITIONS)
    return run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())


def _horizon(snapshot: Snapshot) -> list[HealthCheck]:
    return snapshot.checks("bayesian_horizon")


def test_bayesian_read_before_horizon_warns_in_the_readout(warehouse: Warehouse) -> None:
    snapshot = _analyse(warehouse, engine="bayesian", max_days=14)
    (check,) = _horizon(snapshot)
    assert check.severity == "warning"
    assert check.value == 6
    assert "before its planned horizon (day 6 of 14 planned)" in check.message
    assert "37%" in check.message
    table = render_table(snapshot)
    headline = table.splitlines()[1]
    assert headline.startswith("WARNING: Read before its planned horizon")
    assert "[WARN] bayesian_horizon" in table
    assert "> **WARNING: Read before its planned horizon" in render_markdown(snapshot)


def test_bayesian_horizon_by_planned_sample(warehouse: Warehouse) -> None:
    snapshot = _analyse(warehouse, engine="bayesian", mde=0.05)
    (check,) = _horizon(snapshot)
    assert check.severity == "warning"
    assert "units per variant the plan needs" in check.message


def test_bayesian_at_horizon_and_without_one(warehouse: Warehouse) -> None:
    reached = _analyse(warehouse, engine="bayesian", max_days=6)
    (check,) = _horizon(reached)
    assert check.severity == "info"
    assert "WARNING" not in render_table(reached)
    open_ended = build_plan(spec(engine="bayesian"), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=open_ended, watermark=warehouse.watermark())
    (check,) = _horizon(snapshot)
    assert check.severity == "info"
    assert "sets no horizon" in check.message


def test_frequentist_has_no_horizon_check(warehouse: Warehouse) -> None:
    assert _horizon(_analyse(warehouse, max_days=14)) == []


def test_plan_relative_ci_fieller(warehouse: Warehouse) -> None:
    dataset = generate(seed=5, n_units=500)
    dataset.write(warehouse, "checkout")
    watermark = warehouse.watermark()
    delta_plan = build_plan(spec(), DEFINITIONS)
    fieller_plan = build_plan(spec(relative_ci="fieller"), DEFINITIONS)
    assert fieller_plan.settings()["relative_ci"] == "fieller"
    assert fieller_plan.settings_hash() != delta_plan.settings_hash()
    delta = run_analysis(warehouse=warehouse, plan=delta_plan, watermark=watermark)
    fieller = run_analysis(warehouse=warehouse, plan=fieller_plan, watermark=watermark)

    def orders(snapshot: Snapshot) -> ResultRow:
        return snapshot.result("orders", "b")

    got, base = orders(fieller), orders(delta)
    values = per_unit(dataset, DEFINITIONS["orders"])
    arms = [
        stats.SampleStats.from_values(
            np.array([values[u.unit_id][0] for u in dataset.included() if u.variant == v])
        )
        for v in ("control", "b")
    ]
    welch = stats.welch_ttest(*arms)
    low, high = stats.relative_interval(
        arms[0].mean,
        arms[1].mean,
        arms[0].variance / arms[0].n,
        arms[1].variance / arms[1].n,
        method="fieller",
        df=welch.df,
    )
    assert got.rel_ci_low == pytest.approx(float(low), rel=1e-9)
    assert got.rel_ci_high == pytest.approx(float(high), rel=1e-9)
    assert base.rel_ci_low == pytest.approx(float(welch.rel_ci_low), rel=1e-9)
    assert got.rel_ci_high is not None and base.rel_ci_high is not None
    assert got.rel_ci_high > base.rel_ci_high  # Fieller's interval is skewed upwards
    for name in ("rel_effect", "abs_ci_low", "abs_ci_high", "p_value"):
        assert getattr(got, name) == getattr(base, name)

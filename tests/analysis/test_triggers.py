"""Triggered populations (``plan.trigger``): only units that reached the trigger event at or
after exposure are analysed, each from its first trigger (metric windows start there), the
sample-ratio check runs on them, and the snapshot keeps the assigned population's overall
rows and SRM beside them — each checked against scipy/statsmodels on per-unit values built
here from the raw rows, on DuckDB and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.snapshot import Snapshot
from splitlab.domain import ExperimentSpec, MetricDefinition
from splitlab.warehouse import Warehouse

START = datetime(2024, 5, 1, tzinfo=UTC)
WINDOW_H = 24.0
DEFINITIONS = {
    "converted": MetricDefinition.model_validate(
        {"key": "converted", "kind": "binary", "event": "purchase", "window_hours": WINDOW_H}
    ),
    "revenue": MetricDefinition.model_validate(
        {"key": "revenue", "kind": "sum", "event": "purchase"}
    ),
}
TRIGGER = {"event": "checkout_started", "filter": {"step": "cart"}, "within_hours": 72}


@dataclass
class Data:
    exposed: dict[str, tuple[str, datetime]]
    triggers: list[tuple[str, datetime, str]]
    purchases: list[tuple[str, datetime, float]]


def _data(seed: int = 3, n: int = 900) -> Data:
    rng = np.random.default_rng(seed)
    exposed: dict[str, tuple[str, datetime]] = {}
    triggers: list[tuple[str, datetime, str]] = []
    purchases: list[tuple[str, datetime, float]] = []
    for k in range(n):
        unit = f"u{k}"
        # a 1:1 split where treatment triggers more often: SRM on the triggered units only
        variant = "b" if k % 2 else "control"
        at = START + timedelta(hours=float(rng.uniform(0, 96)))
        exposed[unit] = (variant, at)
        for _ in range(int(rng.integers(0, 2))):
            hours = float(rng.uniform(-30, 110))  # before exposure or past 72 h: no trigger
            step = "cart" if rng.random() < 0.85 else "wishlist"  # the filter drops these
            triggers.append((unit, at + timedelta(hours=hours), step))
        if variant == "b" and rng.random() < 0.5:  # treatment reaches checkout more often
            triggers.append((unit, at + timedelta(hours=float(rng.uniform(0, 5))), "cart"))
        if k % 10 == 0:
            triggers.append((unit, at, "cart"))  # exactly at exposure: triggered
        for _ in range(int(rng.poisson(0.9))):
            hours = float(rng.uniform(-10, 120))
            value = round(float(rng.gamma(2.0, 15.0)) + (4.0 if variant == "b" else 0.0), 3)
            purchases.append((unit, at + timedelta(hours=hours), value))
    return Data(exposed, triggers, purchases)


def _write(data: Data, warehouse: Warehouse) -> None:
    warehouse.record_exposures(
        [
            {"experiment_key": "checkout", "variant_key": v, "unit_id": u, "exposed_at": at}
            for u, (v, at) in data.exposed.items()
        ]
    )
    events: list[dict[str, Any]] = [
        {
            "unit_id": u,
            "event_name": "checkout_started",
            "occurred_at": t,
            "properties": {"step": step},
            "event_id": f"t{i}",
        }
        for i, (u, t, step) in enumerate(data.triggers)
    ]
    events += [
        {"unit_id": u, "event_name": "purchase", "value": v, "occurred_at": t, "event_id": f"p{i}"}
        for i, (u, t, v) in enumerate(data.purchases)
    ]
    warehouse.write_events(events)


def _first_trigger(data: Data) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    for unit, at, step in data.triggers:
        start = data.exposed[unit][1]
        if step == "cart" and start <= at < start + timedelta(hours=72):
            first[unit] = min(first.get(unit, at), at)
    return first


def _values(data: Data, starts: dict[str, datetime]) -> dict[str, tuple[float, float]]:
    """unit → (converted within 24 h of its start, revenue at or after its start)."""
    out = {u: (0.0, 0.0) for u in starts}
    for unit, at, value in data.purchases:
        if unit not in starts or at < starts[unit]:
            continue
        converted, revenue = out[unit]
        if at < starts[unit] + timedelta(hours=WINDOW_H):
            converted = 1.0
        out[unit] = (converted, revenue + value)
    return out


def _spec(trigger: dict[str, Any] | None) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "key": "checkout",
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True},
                {"key": "b", "weight": 0.5},
            ],
            "metrics": {"primary": "converted", "secondary": ["revenue"]},
            "plan": {"trigger": trigger} if trigger else {},
            "start_at": START.isoformat(),
        }
    )


@pytest.fixture
def analysed(warehouse: Warehouse) -> tuple[Data, Snapshot]:
    data = _data()
    _write(data, warehouse)
    plan = build_plan(_spec(TRIGGER), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    return data, Snapshot.from_json(snapshot.to_json())  # the stored form round-trips


def _arms(data: Data, values: dict[str, tuple[float, float]], pick: int) -> list[np.ndarray]:
    return [
        np.array([v[pick] for u, v in values.items() if data.exposed[u][0] == arm])
        for arm in ("control", "b")
    ]


def test_results_are_the_triggered_units_from_their_trigger(
    analysed: tuple[Data, Snapshot],
) -> None:
    data, snapshot = analysed
    values = _values(data, _first_trigger(data))
    y_c, y_t = _arms(data, values, 0)
    assert {u.variant: u.n for u in snapshot.units} == {"control": y_c.size, "b": y_t.size}
    z, p = proportions_ztest([y_t.sum(), y_c.sum()], [y_t.size, y_c.size])
    entry = snapshot.result("converted", "b").to_json()
    assert entry["treatment_mean"] == pytest.approx(y_t.mean(), rel=1e-12)
    assert entry["statistic"] == pytest.approx(z, rel=1e-9)
    assert entry["p_value"] == pytest.approx(p, rel=1e-9)
    r_c, r_t = _arms(data, values, 1)
    welch = scipy_stats.ttest_ind(r_t, r_c, equal_var=False)
    revenue = snapshot.result("revenue", "b").to_json()
    assert revenue["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert revenue["control_mean"] == pytest.approx(r_c.mean(), rel=1e-12)


def test_srm_on_both_populations(analysed: tuple[Data, Snapshot]) -> None:
    data, snapshot = analysed
    population = snapshot.population
    assert population is not None and population.kind == "triggered"
    first = _first_trigger(data)
    triggered = [sum(1 for u in first if data.exposed[u][0] == a) for a in ("control", "b")]
    assigned = [sum(1 for v, _ in data.exposed.values() if v == a) for a in ("control", "b")]
    assert [(u.assigned, u.triggered) for u in population.units] == list(
        zip(assigned, triggered, strict=True)
    )
    expected_t = scipy_stats.chisquare(triggered).pvalue
    expected_a = scipy_stats.chisquare(assigned).pvalue
    assert population.srm_p_triggered == pytest.approx(expected_t, rel=1e-9)
    assert population.srm_p_assigned == pytest.approx(expected_a, rel=1e-9)
    assert expected_t < 0.001 < expected_a  # the trigger itself is imbalanced here
    srm = [c for c in snapshot.health if c.check == "srm"]
    assert srm and srm[0].severity != "info"  # the health check reads the triggered units
    assert srm[0].value == pytest.approx(expected_t, rel=1e-9)
    assert population.trigger == TRIGGER


def test_assigned_rows_count_every_unit_from_exposure(analysed: tuple[Data, Snapshot]) -> None:
    data, snapshot = analysed
    assert snapshot.population is not None
    starts = {u: at for u, (_v, at) in data.exposed.items()}
    values = _values(data, starts)
    y_c, y_t = _arms(data, values, 0)
    row = next(
        r
        for r in snapshot.population.assigned_results
        if r.metric == "converted" and r.variant == "b"
    ).to_json()
    z, p = proportions_ztest([y_t.sum(), y_c.sum()], [y_t.size, y_c.size])
    assert row["statistic"] == pytest.approx(z, rel=1e-9)
    assert row["p_value"] == pytest.approx(p, rel=1e-9)
    assert all(r.segment is None for r in snapshot.population.assigned_results)


def test_without_a_trigger_nothing_changes(warehouse: Warehouse) -> None:
    data = _data(seed=5, n=300)
    _write(data, warehouse)
    plan = build_plan(_spec(None), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    assert snapshot.population is None
    assert "population" not in snapshot.to_json()
    assert "trigger" not in plan.settings()
    triggered = build_plan(_spec(TRIGGER), DEFINITIONS)
    assert triggered.settings()["trigger"] == TRIGGER
    assert triggered.settings_hash() != plan.settings_hash()


@pytest.mark.parametrize(
    "trigger",
    [{"event": ""}, {"event": "x", "within_hours": 0}, {"event": "x", "bogus": 1}, {}],
)
def test_bad_triggers_are_refused(trigger: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _spec(trigger or {"filter": {}})


def test_the_readout_names_the_population(analysed: tuple[Data, Snapshot]) -> None:
    from splitlab.analysis.render import render_markdown, render_table

    _data, snapshot = analysed
    assert snapshot.population is not None
    units = snapshot.population.units
    text = render_table(snapshot)
    assert "Triggered population (reached 'checkout_started'" in text
    assert f"control {units[0].triggered:,} of {units[0].assigned:,}" in text
    assert "assigned population, converted b: effect" in text
    assert "Triggered population" in render_markdown(snapshot)

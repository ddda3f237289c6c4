"""Each health check fires on data built to trigger it and stays quiet on a clean A/A test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.health import FADING
from splitlab.analysis.snapshot import HealthCheck
from splitlab.domain import MetricDefinition
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, START, Dataset, Event, generate, spec

DEFINITIONS = {m.key: m for m in METRICS}


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    """Health logic is engine-independent (parity is tested separately): DuckDB only."""
    opened = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    opened.start()
    yield opened
    opened.close()


def health(
    warehouse: Warehouse,
    dataset: Dataset,
    *,
    definitions: dict[str, MetricDefinition] | None = None,
    **spec_options: Any,
) -> dict[str, list[HealthCheck]]:
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(**spec_options), definitions or DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    by_check: dict[str, list[HealthCheck]] = {}
    for entry in snapshot.health:
        by_check.setdefault(entry.check, []).append(entry)
    return by_check


def severities(checks: dict[str, list[HealthCheck]], name: str) -> set[str]:
    return {entry.severity for entry in checks[name]}


def value(entry: HealthCheck) -> float:
    assert entry.value is not None, entry
    return entry.value


def test_clean_aa_is_quiet(warehouse: Warehouse) -> None:
    checks = health(
        warehouse,
        generate(seed=2, n_units=2500, excluded_share=0.0),
        segments=["country"],
        guardrails=[{"key": "latency_p90", "margin": 0.5}],
    )
    loud = [e for entries in checks.values() for e in entries if e.severity != "info"]
    assert loud == []
    expected = {"srm", "srm_daily", "srm_segment", "multiple_exposure", "sample_size"}
    expected |= {"allocation_drift", "null_rate", "pre_period_imbalance", "novelty"}
    expected |= {"guardrail", "underpowered"}
    assert expected <= set(checks)


def test_srm(warehouse: Warehouse) -> None:
    checks = health(warehouse, generate(seed=3, n_units=2000, weights=(0.58, 0.42)))
    (srm,) = checks["srm"]
    assert srm.severity == "critical" and value(srm) < 0.001
    assert "mismatch" in srm.message


def test_srm_in_a_segment(warehouse: Warehouse) -> None:
    dataset = generate(seed=4, n_units=3000)
    rng = np.random.default_rng(0)
    for unit in dataset.units:
        if unit.attributes.get("country") == "fr" and rng.random() < 0.5:
            unit.variant = "b"
    checks = health(warehouse, dataset, segments=["country"])
    assert severities(checks, "srm_segment") == {"warning"}
    assert "country=fr" in checks["srm_segment"][0].message


def test_allocation_drift_and_daily_srm(warehouse: Warehouse) -> None:
    dataset = generate(seed=5, n_units=3000, days=6)
    rng = np.random.default_rng(1)
    for unit in dataset.units:
        if unit.exposed_at >= START + timedelta(days=3) and rng.random() < 0.6:
            unit.variant = "control"
    checks = health(warehouse, dataset)
    assert severities(checks, "allocation_drift") == {"warning"}
    assert severities(checks, "srm_daily") == {"warning"}


def test_multiple_exposure_rate(warehouse: Warehouse) -> None:
    checks = health(warehouse, generate(seed=6, n_units=800, excluded_share=0.1))
    (entry,) = checks["multiple_exposure"]
    assert entry.severity == "critical" and 0.05 < value(entry) < 0.2


def test_small_sample(warehouse: Warehouse) -> None:
    checks = health(warehouse, generate(seed=7, n_units=120))
    (entry,) = checks["sample_size"]
    assert entry.severity == "warning" and value(entry) < 100


def test_no_data_and_null_rate(warehouse: Warehouse) -> None:
    definitions = {
        **DEFINITIONS,
        "nothing": MetricDefinition(key="nothing", kind="count", event="no-such-event"),
        "tips": MetricDefinition(key="tips", kind="sum", event="purchase", value_field="tip"),
    }
    checks = health(
        warehouse,
        generate(seed=8, n_units=300),
        definitions=definitions,
        guardrails=[{"key": "nothing"}, {"key": "tips"}],
    )
    assert [e.metric for e in checks["no_data"]] == ["nothing"]
    tips = [e for e in checks["null_rate"] if e.metric == "tips"]
    assert tips[0].severity == "warning" and tips[0].value == 1.0


def test_maturity(warehouse: Warehouse) -> None:
    dataset = generate(seed=9, n_units=300)
    shift = datetime.now(UTC) - timedelta(days=3) - START
    for unit in dataset.units:
        unit.exposed_at += shift
    for event in dataset.events:
        event.occurred_at += shift
    checks = health(warehouse, dataset)
    by_metric = {e.metric: e for e in checks["maturity"]}
    assert by_metric["converted"].severity == "warning"
    assert by_metric["converted"].value == 1.0  # every 7-day window is still open
    assert "orders" not in by_metric  # no window: always mature


def test_pre_period_imbalance(warehouse: Warehouse) -> None:
    dataset = generate(seed=10, n_units=1500)
    extra = [
        Event(u.unit_id, "purchase", 80.0, u.exposed_at - timedelta(days=2))
        for u in dataset.units
        if u.variant == "b"
    ]
    dataset.events += extra
    checks = health(warehouse, dataset)
    assert severities(checks, "pre_period_imbalance") == {"warning"}


def test_a_pre_period_without_events_is_reported_as_uncheckable(warehouse: Warehouse) -> None:
    dataset = generate(seed=10, n_units=600)
    exposed = {u.unit_id: u.exposed_at for u in dataset.units}
    dataset.events = [e for e in dataset.events if e.occurred_at >= exposed[e.unit_id]]
    checks = health(warehouse, dataset)
    (entry,) = [e for e in checks["pre_period_imbalance"] if e.metric == "revenue"]
    assert entry.severity == "info" and entry.value is None
    assert "cannot be compared" in entry.message and "nan" not in entry.message


def test_the_text_readout_names_the_metric_of_each_check(warehouse: Warehouse) -> None:
    from splitlab.analysis.render import render_markdown, render_table

    dataset = generate(seed=3, n_units=400)
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    table = render_table(snapshot)
    first = table.splitlines()[0]
    mark = warehouse.watermark()
    assert f"{mark.exposures:,} exposures, {mark.events:,} events in the warehouse" in first
    assert "null_rate (revenue): " in table and "pre_period_imbalance (revenue): " in table
    assert "`null_rate` (revenue) — " in render_markdown(snapshot)


def test_novelty(warehouse: Warehouse) -> None:
    dataset = generate(seed=11, n_units=4000, days=8)
    rng = np.random.default_rng(2)
    for unit in dataset.units:
        day = (unit.exposed_at - START).days
        if unit.variant == "b":
            for _ in range(int(rng.poisson(4.0 * max(0.0, 1 - day / 4)))):
                at = unit.exposed_at + timedelta(hours=float(rng.uniform(0, 100)))
                dataset.events.append(Event(unit.unit_id, "purchase", 10.0, at))
    checks = health(warehouse, dataset)
    orders = next(e for e in checks["novelty"] if e.metric == "orders")
    assert orders.severity == "warning" and orders.variant == "b"
    assert "novelty" in orders.message
    # earlier cohorts show the larger effect: not the time-since-exposure fading the
    # decision engine holds on
    assert orders.fading is False


def test_novelty_fading_with_time_since_exposure(warehouse: Warehouse) -> None:
    """Later cohorts with the larger effect — what a fading novelty effect looks like while
    early cohorts have been watched longer — are marked ``fading``."""
    dataset = generate(seed=11, n_units=4000, days=8)
    rng = np.random.default_rng(3)
    for unit in dataset.units:
        day = (unit.exposed_at - START).days
        if unit.variant == "b":
            for _ in range(int(rng.poisson(4.0 * min(1.0, day / 4)))):
                at = unit.exposed_at + timedelta(hours=float(rng.uniform(0, 100)))
                dataset.events.append(Event(unit.unit_id, "purchase", 10.0, at))
    checks = health(warehouse, dataset)
    orders = next(e for e in checks["novelty"] if e.metric == "orders" and e.variant == "b")
    assert orders.severity == "warning" and orders.fading is True
    assert FADING in orders.message


def test_guardrail_ratio_threshold(warehouse: Warehouse) -> None:
    dataset = generate(seed=12, n_units=1500)
    b_units = {u.unit_id for u in dataset.units if u.variant == "b"}
    for event in dataset.events:
        if event.name == "page_load" and event.unit_id in b_units:
            event.properties = {"ms": event.properties["ms"] * 1.5}
    checks = health(warehouse, dataset, guardrails=[{"key": "latency_p90", "margin": 0.25}])
    (entry,) = checks["guardrail"]
    assert entry.severity == "critical"
    assert "1.25 × control" in entry.message


def test_guardrail_non_inferiority_not_shown(warehouse: Warehouse) -> None:
    checks = health(
        warehouse,
        generate(seed=13, n_units=200, excluded_share=0.0),
        guardrails=[{"key": "latency_p90", "margin": 0.01}],
    )
    (entry,) = checks["guardrail"]
    assert entry.severity in ("warning", "critical")


def test_underpowered_against_the_plan(warehouse: Warehouse) -> None:
    checks = health(warehouse, generate(seed=14, n_units=600), mde=0.01, max_days=14)
    (entry,) = checks["underpowered"]
    assert entry.severity == "warning" and value(entry) < 0.8
    assert "past the planned maximum of 14 days" in entry.message
    assert not entry.pending  # over the planned duration: a warning, not an open item


def test_underpowered_within_the_plan_is_pending_not_passed(warehouse: Warehouse) -> None:
    checks = health(warehouse, generate(seed=14, n_units=600), mde=0.1, max_days=365)
    (entry,) = checks["underpowered"]
    assert entry.severity == "info" and value(entry) < 0.8
    assert entry.pending and "about 14 more day(s) needed." in entry.message
    assert entry.to_json()["pending"] is True


def test_underpowered_without_an_mde_is_pending(warehouse: Warehouse) -> None:
    checks = health(warehouse, generate(seed=14, n_units=600))
    (entry,) = checks["underpowered"]
    assert entry.severity == "info" and entry.pending

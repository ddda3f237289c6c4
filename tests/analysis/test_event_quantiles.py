"""``plan.event_quantiles``: a quantile metric over all events (p95 of all page loads) with the
clustered delta-method SE, in the analysis on DuckDB and PostgreSQL — checked against
``stats.event_quantile_stats`` + ``quantile_test`` on the events in Python."""

from __future__ import annotations

import numpy as np
import pytest

from splitlab.analysis import build_plan, run_analysis
from splitlab.errors import ValidationError
from splitlab.stats import quantile_test
from splitlab.stats.event_quantile import event_quantile_stats
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, generate, spec

DEFINITIONS = {m.key: m for m in METRICS}


def test_event_level_quantile_matches_the_events(warehouse: Warehouse) -> None:
    dataset = generate(seed=21, n_units=700)
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(segments=["country"], event_quantiles=["latency_p90"]), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    row = snapshot.result("latency_p90", "b")
    arm = {u.unit_id: u.variant for u in dataset.included()}
    per_unit: dict[str, dict[str, list[float]]] = {"control": {}, "b": {}}
    for event in dataset.events:
        ms = event.properties.get("ms")
        variant = arm.get(event.unit_id)
        exposed = next((u.exposed_at for u in dataset.units if u.unit_id == event.unit_id), None)
        if event.name != "page_load" or variant is None or not isinstance(ms, int | float):
            continue
        if exposed is None or event.occurred_at < exposed:
            continue
        per_unit[variant].setdefault(event.unit_id, []).append(float(ms))
    stats = {
        v: event_quantile_stats([np.array(x) for x in units.values()], 0.9)
        for v, units in per_unit.items()
    }
    expected = quantile_test(stats["control"], stats["b"])
    assert row.control_mean == pytest.approx(float(stats["control"].estimate), rel=1e-9)
    assert row.treatment_mean == pytest.approx(float(stats["b"].estimate), rel=1e-9)
    assert row.abs_effect == pytest.approx(float(expected.abs_effect), rel=1e-9)
    assert row.abs_ci_low == pytest.approx(float(expected.abs_ci_low), rel=1e-9)
    assert row.p_value == pytest.approx(float(expected.p_value), rel=1e-9)
    # segment rows and heterogeneity tests too (their numbers: test_event_quantile_segments)
    assert [r for r in snapshot.results if r.metric == "latency_p90" and r.segment]
    assert any(h.metric == "latency_p90" for h in snapshot.heterogeneity)
    assert snapshot.settings["event_quantiles"] == ["latency_p90"]
    unit_level = run_analysis(
        warehouse=warehouse,
        plan=build_plan(spec(segments=["country"]), DEFINITIONS),
        watermark=warehouse.watermark(),
    )
    assert unit_level.result("latency_p90", "b").control_mean != row.control_mean
    assert unit_level.result("orders", "b") == snapshot.result("orders", "b")


def test_only_quantile_metrics_can_be_event_level() -> None:
    with pytest.raises(ValidationError, match="orders"):
        build_plan(spec(event_quantiles=["orders"]), DEFINITIONS)

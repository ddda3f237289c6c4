"""Quality, cost and performance overlays (``decisions.ml``): the cost arithmetic pinned by
hand, which metric plays which part, and the overlay's cells read straight from the
snapshot (the plan's corrected p-value, good direction for lower-is-better metrics)."""

from __future__ import annotations

from typing import Any

import pytest

from splitlab.decisions.ml import config_label, cost_figures, metric_defs, metric_roles, overlay
from tests.decisions.snapshots import row, snapshot


def test_cost_figures_pinned() -> None:
    f = cost_figures(
        control_cost=0.0021, variant_cost=0.00126, control_quality=0.78, variant_quality=0.7332
    )
    assert f.savings_per_request == pytest.approx(0.00084, rel=1e-12)
    assert f.savings_pct == pytest.approx(40.0, rel=1e-12)
    assert f.savings_per_million == pytest.approx(840.0, rel=1e-12)
    # (0.7332 / 0.00126) / (0.78 / 0.0021) − 1 = 0.94 × 1.6667 − 1
    assert f.efficiency_gain_pct == pytest.approx(56.666666666666664, rel=1e-12)
    assert f.roi_pct == pytest.approx(66.66666666666667, rel=1e-12)  # 0.00084 / 0.00126
    assert f.roi_basis == "savings"


def test_roi_with_the_value_of_quality_pinned() -> None:
    f = cost_figures(
        control_cost=0.0021,
        variant_cost=0.00126,
        control_quality=0.78,
        variant_quality=0.7332,
        value_per_quality_unit=0.01,
    )
    # ((0.7332 − 0.78) × 0.01 + 0.00084) / 0.00126 = 0.000372 / 0.00126
    assert f.roi_pct == pytest.approx(29.523809523809526, rel=1e-9)
    assert f.roi_basis == "savings+quality"


def test_a_dearer_variant_has_negative_savings_and_roi() -> None:
    f = cost_figures(control_cost=1.0, variant_cost=1.25, control_quality=0.5, variant_quality=0.6)
    assert f.savings_per_request == -0.25 and f.savings_pct == -25.0
    assert f.roi_pct == -20.0
    assert f.efficiency_gain_pct == pytest.approx(-4.0)  # (0.6/1.25)/(0.5/1) − 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"control_cost": None, "variant_cost": 1.0},
        {"control_cost": 0.0, "variant_cost": 0.0},
        {"control_cost": float("nan"), "variant_cost": 1.0},
    ],
)
def test_missing_or_zero_costs_give_no_figure(kwargs: dict[str, Any]) -> None:
    f = cost_figures(**kwargs, control_quality=0.5, variant_quality=0.5)
    assert f.savings_pct is None and f.roi_pct is None and f.efficiency_gain_pct is None


def _metric(key: str, name: str, role: str, *, direction: str = "increase", kind: str = "ratio",
            quantile: float | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "role": role,
        "margin": None,
        "definition": {
            "key": key,
            "name": name,
            "kind": kind,
            "quantile": quantile,
            "direction": direction,
        },
    }


ML_METRICS = [
    _metric("ml-ctr", "Click-through rate", "primary"),
    _metric("ml-cost", "Cost per request (USD)", "secondary", direction="decrease"),
    _metric(
        "ml-latency-p95",
        "Latency",
        "secondary",
        direction="decrease",
        kind="quantile",
        quantile=0.95,
    ),
    _metric(
        "ml-latency-p99",
        "Latency p99",
        "secondary",
        direction="decrease",
        kind="quantile",
        quantile=0.99,
    ),
    _metric("ml-quality", "Quality score", "guardrail"),
    _metric("errors", "Errors per request", "guardrail", direction="decrease"),
    _metric("rps", "Throughput (requests per second)", "secondary"),
]


def test_roles_from_keys_and_names() -> None:
    snap = snapshot(metrics=ML_METRICS, rows=[])
    defs = metric_defs(snap)
    roles = metric_roles(defs)
    assert roles.quality == "ml-quality"  # named quality, although CTR is the primary
    assert roles.cost == "ml-cost"
    assert roles.latency == ("ml-latency-p95", "ml-latency-p99")
    assert roles.ranking_latency(defs) == "ml-latency-p99"
    assert roles.errors == ("errors",) and roles.throughput == ("rps",)
    assert defs["ml-latency-p95"].label == "Latency (p95)"
    assert defs["ml-latency-p99"].label == "Latency p99"
    assert metric_roles(defs, quality="ml-ctr").quality == "ml-ctr"
    assert metric_roles(defs, quality="nope").quality == "ml-quality"
    # no metric named for quality: the primary (unless it is a cost/latency/error metric)
    plain = metric_defs(snapshot(metrics=[_metric("res", "Resolution rate", "primary")], rows=[]))
    assert metric_roles(plain).quality == "res"
    costly = metric_defs(snapshot(metrics=[_metric("c", "Cost", "primary")], rows=[]))
    assert metric_roles(costly).quality is None


def test_config_labels() -> None:
    assert config_label("b", {"model": "gpt-x", "prompt_id": "v4", "cost_per_request": 1}) == (
        "gpt-x · v4"
    )
    assert config_label("b", {"temperature": 0.2}) == "temperature=0.2"
    assert config_label("b", None) == "b"
    assert config_label("b", {"cost_per_request": 0.1}) == "b"


def _ml_snapshot() -> Any:
    metrics = [*ML_METRICS[:3], ML_METRICS[4]]
    rows = [
        row("ml-ctr", rel=-0.04, ci=(-0.06, -0.02), p=0.001, p_adjusted=0.003),
        row("ml-cost", rel=-0.4, ci=(-0.42, -0.38), p=1e-9, control_mean=0.002),
        row("ml-latency-p95", rel=-0.35, ci=(-0.37, -0.33), p=1e-9, control_mean=200.0),
        row(
            "ml-quality", rel=-0.01, ci=(-0.025, 0.005), p=0.02, p_adjusted=0.08, control_mean=0.78
        ),
    ]
    return snapshot(metrics=metrics, rows=rows)


def test_overlay_reads_the_snapshot() -> None:
    snap = _ml_snapshot()
    roles, variants = overlay(snap, {"control": {"model": "xl"}, "treatment": {"model": "s"}})
    assert roles.quality == "ml-quality" and roles.cost == "ml-cost"
    base, treat = variants
    assert base.is_control and base.config == "xl" and base.quality is not None
    assert base.quality.value == 0.78 and base.quality.delta is None
    q = treat.quality
    assert q is not None
    assert q.delta == pytest.approx(-0.0078) and q.p_value == 0.08  # the corrected p-value
    assert not q.significant and q.good is False
    cost = treat.cost
    assert treat.cost_source == "metric" and cost is not None
    assert cost.significant and cost.good is True  # cheaper is better
    latency = treat.latency[0]
    assert latency.value == pytest.approx(130.0) and latency.good is True
    assert treat.figures is not None
    assert treat.figures.savings_pct == pytest.approx(40.0)
    # a measured cost: the savings carry the cost effect's interval, negated
    assert treat.figures.savings_pct_ci == pytest.approx((38.0, 42.0))
    assert treat.figures.savings_ci == pytest.approx((0.002 * 0.38, 0.002 * 0.42))


def test_listed_prices_win_over_a_cost_metric() -> None:
    snap = _ml_snapshot()
    payloads = {
        "control": {"model": "xl", "cost_per_request": 0.003},
        "treatment": {"model": "s", "cost_per_request": 0.001, "value_per_quality_unit": 0.5},
    }
    _, (_, treat) = overlay(snap, payloads)
    assert treat.cost_source == "payload" and treat.cost is not None
    assert treat.cost.value == 0.001 and treat.cost.delta == pytest.approx(-0.002)
    assert treat.figures is not None and treat.figures.roi_basis == "savings+quality"
    assert treat.figures.savings_ci is None  # listed prices are exact
    # ((0.7722 − 0.78) × 0.5 + 0.002) / 0.001
    assert treat.figures.roi_pct == pytest.approx((-0.0078 * 0.5 + 0.002) / 0.001 * 100)
    assert treat.to_json()["cost"]["exact"] is True
    # one variant without a price: the cost metric is used instead
    _, (_, mixed) = overlay(snap, {"control": {"cost_per_request": 0.003}, "treatment": {}})
    assert mixed.cost_source == "metric"

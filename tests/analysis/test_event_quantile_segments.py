"""Event-level quantiles (``plan.event_quantiles``) per segment value: each cell's estimate and
clustered delta-method bracket (Deng, Knoblich & Lu 2018) equal an independent numpy
computation on a small hand-built warehouse, pinned; the overall rows are those of the same
analysis without segments; DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats as sp

from splitlab.analysis import build_plan, run_analysis
from splitlab.domain import ExperimentSpec, MetricDefinition
from splitlab.warehouse import Warehouse
from tests.analysis.builders import START, Dataset, Event, Unit

Q = 0.75
METRIC = MetricDefinition.model_validate(
    {"key": "load_p75", "kind": "quantile", "event": "load", "quantile": Q, "direction": "decrease"}
)
# unit → (variant, country, its "load" values after exposure)
UNITS: dict[str, tuple[str, str, list[float]]] = {
    "c1": ("control", "se", [100, 120, 300]),
    "c2": ("control", "se", [90]),
    "c3": ("control", "se", [110, 140]),
    "c4": ("control", "de", [200, 210, 220, 500]),
    "c5": ("control", "de", [180]),
    "c6": ("control", "de", [190, 260]),
    "c7": ("control", "fi", [300, 320]),
    "b1": ("b", "se", [95, 105]),
    "b2": ("b", "se", [130, 150, 170, 400]),
    "b3": ("b", "se", [85]),
    "b4": ("b", "de", [150, 160]),
    "b5": ("b", "de", [170, 175, 600]),
    "b6": ("b", "de", [140]),
    "b7": ("b", "fi", [310]),
}


def _dataset() -> Dataset:
    units, events = [], []
    for k, (uid, (variant, country, values)) in enumerate(UNITS.items()):
        exposed = START + timedelta(hours=k)
        units.append(Unit(uid, variant, exposed, {"country": country}))
        for j, value in enumerate(values):
            events.append(Event(uid, "load", value, exposed + timedelta(minutes=j + 1)))
        # not in the population: before exposure, without a value, another event
        events.append(Event(uid, "load", 9999.0, exposed - timedelta(minutes=5)))
        events.append(Event(uid, "load", None, exposed + timedelta(minutes=30)))
        events.append(Event(uid, "click", 1.0, exposed + timedelta(minutes=31)))
    return Dataset(units, events)


def _spec(segments: list[str]) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "key": "loads",
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True},
                {"key": "b", "weight": 0.5},
            ],
            "metrics": {"primary": "load_p75"},
            "plan": {"segments": segments, "event_quantiles": ["load_p75"]},
            "start_at": START.isoformat(),
        }
    )


def _arm(per_unit: list[list[float]]) -> tuple[float, float, float]:
    """Independently: the pooled q-quantile, and its SE by the clustered delta method —
    F̂ = ΣI/ΣN over units, Var(F̂) from the units' sample (co)variances of I and N, the
    quantiles at q ∓ z·SD(F̂), SE = their distance ÷ 2z.  Returns (estimate, SE, units)."""
    events = np.concatenate([np.asarray(v, dtype=float) for v in per_unit])
    estimate = float(np.quantile(events, Q))
    i = np.array([np.sum(np.asarray(v) <= estimate) for v in per_unit], dtype=float)
    n = np.array([len(v) for v in per_unit], dtype=float)
    f = i.sum() / n.sum()
    cov = np.cov(np.vstack([i, n]), ddof=1)
    var_f = (cov[0, 0] - 2 * f * cov[0, 1] + f * f * cov[1, 1]) / (len(n) * n.mean() ** 2)
    z = sp.norm.ppf(0.975)
    p_low, p_high = np.clip([Q - z * np.sqrt(var_f), Q + z * np.sqrt(var_f)], 0, 1)
    low, high = np.quantile(events, [p_low, p_high])
    return estimate, float((high - low) / (2 * z)), float(len(n))


def _expected(country: str | None) -> dict[str, float]:
    arms = {
        variant: _arm(
            [
                values
                for v, c, values in UNITS.values()
                if v == variant and (country is None or c == country)
            ]
        )
        for variant in ("control", "b")
    }
    (qc, se_c, _), (qt, se_t, _) = arms["control"], arms["b"]
    effect, se = qt - qc, float(np.hypot(se_c, se_t))
    z = sp.norm.ppf(0.975)
    return {
        "control_mean": qc,
        "treatment_mean": qt,
        "abs_effect": effect,
        "abs_ci_low": effect - z * se,
        "abs_ci_high": effect + z * se,
        "p_value": float(2 * sp.norm.sf(abs(effect) / se)),
        "se": se,
    }


FIELDS = ("control_mean", "treatment_mean", "abs_effect", "abs_ci_low", "abs_ci_high", "p_value")


def test_the_independent_computation_is_pinned() -> None:
    """The numpy reference itself, pinned (so a change to it cannot go unnoticed)."""
    se, de = _expected("se"), _expected("de")
    assert se["control_mean"] == pytest.approx(135.0)  # 90 100 110 120 140 300: 120 + .75·20
    assert se["treatment_mean"] == pytest.approx(160.0)
    assert se["abs_ci_low"] == pytest.approx(-133.341720, abs=1e-6)
    assert se["p_value"] == pytest.approx(0.756978, abs=1e-6)
    assert de["control_mean"] == pytest.approx(240.0)
    assert de["treatment_mean"] == pytest.approx(173.75)
    assert de["abs_ci_low"] == pytest.approx(-309.299133, abs=1e-6)
    assert de["p_value"] == pytest.approx(0.593173, abs=1e-6)
    assert _expected(None)["p_value"] == pytest.approx(0.418292, abs=1e-6)


def test_each_segment_value_has_its_own_clustered_event_quantile(warehouse: Warehouse) -> None:
    _dataset().write(warehouse, "loads")
    definitions = {METRIC.key: METRIC}
    plan = build_plan(_spec(["country"]), definitions)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    rows = {
        (r.segment.value if r.segment else None): r
        for r in snapshot.results
        if r.metric == "load_p75" and r.variant == "b"
    }
    assert set(rows) == {None, "se", "de", "fi"}
    for country in (None, "se", "de"):
        expected = _expected(country)
        for name in FIELDS:
            assert getattr(rows[country], name) == pytest.approx(expected[name], rel=1e-9), (
                country,
                name,
            )
    assert rows["se"].segment is not None and rows["se"].segment.name == "country"
    assert rows["se"].p_value_adjusted_cells is not None
    # one unit per arm: no spread between units, so no bracket and no test (a reason, no crash)
    assert rows["fi"].p_value is None and rows["fi"].abs_effect is None
    assert rows["fi"].reason
    # the segment's heterogeneity: two cells with an effect → the interaction z-test
    (test,) = [h for h in snapshot.heterogeneity if h.metric == "load_p75"]
    se, de = _expected("se"), _expected("de")
    z = (se["abs_effect"] - de["abs_effect"]) / np.hypot(se["se"], de["se"])
    assert test.test == "interaction_z" and test.cells == 2
    assert abs(test.statistic or 0) == pytest.approx(abs(z), rel=1e-9)
    # the overall rows are those of the same analysis without segments
    unsegmented = run_analysis(
        warehouse=warehouse,
        plan=build_plan(_spec([]), definitions),
        watermark=warehouse.watermark(),
    )
    assert unsegmented.result("load_p75", "b") == rows[None]
    # snapshots from before segment rows existed are not served from the cache for this plan
    assert snapshot.settings["event_quantile_segments"] is True
    assert "event_quantile_segments" not in unsegmented.settings

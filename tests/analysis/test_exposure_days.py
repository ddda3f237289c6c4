"""The novelty view beside a snapshot (``analysis.exposure_days``, ``analysis.novelty``,
computed on demand by ``novelty.with_exposure_days``): each day-since-exposure point is the
metric's own fixed-horizon test on that day's per-unit values — checked against scipy's Welch
test and statsmodels' two-proportion z-test on values computed here from the raw rows — and a
lift that fades with time since exposure reads as fading.  On DuckDB and PostgreSQL."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.exposure_days import TIMING_KEY, ExposureDayAggregates
from splitlab.analysis.novelty import exposure_day_results, with_exposure_days
from splitlab.analysis.snapshot import ExposureDayPoint, Snapshot
from splitlab.domain import Engine
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, START, Dataset, generate, spec

DAY = timedelta(days=1)
AS_OF = START + timedelta(days=8)
"""Units are exposed over 6 days: later ones have fewer complete days by then (day 7 is
complete for none, days 0 and 1 for all)."""


def _analyse(warehouse: Warehouse, data: Dataset) -> Snapshot:
    data.write(warehouse, "checkout")
    plan = build_plan(spec(), {m.key: m for m in METRICS}, top_n=2)
    watermark = dataclasses.replace(warehouse.watermark(), last_ingested_at=AS_OF)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=watermark)
    # not in the analysis's pass: the view is computed beside the snapshot, on demand
    assert "exposure_days" not in snapshot.to_json() and TIMING_KEY not in snapshot.timings_ms
    return with_exposure_days(warehouse=warehouse, plan=plan, snapshot=snapshot)


def _day_values(data: Dataset, k: int) -> dict[str, dict[str, list[float]]]:
    """Per metric and arm, the per-unit values on day k of the units whose day k is
    complete by AS_OF (binary: any purchase; count: purchases; sum: Σ value)."""
    out: dict[str, dict[str, list[float]]] = {
        m: {"control": [], "b": []} for m in ("converted", "orders", "revenue")
    }
    by_unit: dict[str, list[tuple[datetime, float | None]]] = {}
    for e in data.events:
        if e.name == "purchase":
            by_unit.setdefault(e.unit_id, []).append((e.occurred_at, e.value))
    for unit in data.included():
        start = unit.exposed_at + k * DAY
        if start + DAY > AS_OF:
            continue
        hits = [v for at, v in by_unit.get(unit.unit_id, []) if start <= at < start + DAY]
        out["converted"][unit.variant].append(float(bool(hits)))
        out["orders"][unit.variant].append(float(len(hits)))
        out["revenue"][unit.variant].append(float(sum(v for v in hits if v is not None)))
    return out


def _points(snapshot: Snapshot, metric: str) -> dict[int, ExposureDayPoint]:
    return {p.days_since_exposure: p for p in snapshot.exposure_days if p.metric == metric}


def test_points_are_the_metrics_own_tests_on_each_day(warehouse: Warehouse) -> None:
    data = generate(seed=11, n_units=900, lift=0.4)
    snapshot = _analyse(warehouse, data)
    # binary, count and sum metrics (CUPED revenue too, unadjusted); not ratio or quantile
    assert {p.metric for p in snapshot.exposure_days} == {"converted", "orders", "revenue"}
    assert [p.metric for p in snapshot.exposure_day_trends] == ["converted", "orders", "revenue"]
    assert TIMING_KEY in snapshot.timings_ms
    compared = 0
    assert max(p.days_since_exposure for p in snapshot.exposure_days) == 6
    for k in range(7):
        values = _day_values(data, k)
        for metric in ("orders", "revenue"):
            control, treatment = (np.array(values[metric][v]) for v in ("control", "b"))
            point = _points(snapshot, metric).get(k)
            if len(control) < 2 or len(treatment) < 2:
                assert point is None or point.reason
                continue
            assert point is not None and point.engine is Engine.FREQUENTIST
            assert point.control_n == len(control) and point.treatment_n == len(treatment)
            assert point.control_mean == pytest.approx(control.mean(), rel=1e-12)
            assert point.treatment_mean == pytest.approx(treatment.mean(), rel=1e-12)
            if control.var() == 0 and treatment.var() == 0:
                assert point.reason == "zero_variance"
                continue
            welch = sps.ttest_ind(treatment, control, equal_var=False)
            low, high = welch.confidence_interval(0.95)
            assert point.statistic == pytest.approx(welch.statistic, rel=1e-9)
            assert point.p_value == pytest.approx(welch.pvalue, rel=1e-9)
            assert point.df == pytest.approx(welch.df, rel=1e-9)
            assert (point.abs_ci_low, point.abs_ci_high) == pytest.approx((low, high), rel=1e-9)
            # relative: delta method with the same t critical value
            m_c, m_t = control.mean(), treatment.mean()
            v_c = control.var(ddof=1) / len(control)
            v_t = treatment.var(ddof=1) / len(treatment)
            rel = m_t / m_c - 1
            se = math.sqrt((v_t + (m_t / m_c) ** 2 * v_c) / m_c**2)
            half = sps.t.ppf(0.975, welch.df) * se
            assert point.rel_effect == pytest.approx(rel, rel=1e-9)
            assert (point.rel_ci_low, point.rel_ci_high) == pytest.approx(
                (rel - half, rel + half), rel=1e-9
            )
            compared += 1
        # binary: the two-proportion z-test (pooled statistic, unpooled Wald interval)
        control, treatment = (np.array(values["converted"][v]) for v in ("control", "b"))
        point = _points(snapshot, "converted")[k]
        counts = np.array([treatment.sum(), control.sum()])
        nobs = np.array([len(treatment), len(control)])
        z, p = proportions_ztest(counts, nobs)
        low, high = confint_proportions_2indep(
            counts[0], nobs[0], counts[1], nobs[1], method="wald", compare="diff"
        )
        assert point.statistic == pytest.approx(z, rel=1e-9)
        assert point.p_value == pytest.approx(p, rel=1e-9)
        assert (point.abs_ci_low, point.abs_ci_high) == pytest.approx((low, high), rel=1e-9)
        compared += 1
    assert compared >= 20
    # day 6 and later: only units exposed early enough (later days have fewer units)
    orders = _points(snapshot, "orders")
    n = [orders[k].control_n for k in sorted(orders)]
    assert n == sorted(n, reverse=True) and n[0] > n[-1]
    # order: plan metric order, then treatment, then day
    keys = [(p.metric, p.variant, p.days_since_exposure) for p in snapshot.exposure_days]
    order = {"converted": 0, "orders": 1, "revenue": 2}
    assert keys == sorted(keys, key=lambda key: (order[key[0]], key[1], key[2]))


def test_served_only_with_the_daily_series(warehouse: Warehouse) -> None:
    snapshot = _analyse(warehouse, generate(seed=3, n_units=300))
    data = snapshot.to_json()
    assert data["exposure_days"] and data["exposure_day_trends"]
    assert list(data["exposure_days"][0])[:3] == ["metric", "variant", "days_since_exposure"]
    assert Snapshot.from_json(data) == snapshot
    assert "exposure_days" not in snapshot.view().to_json()
    assert "exposure_day_trends" not in snapshot.view().to_json()
    assert snapshot.view(daily=True).to_json()["exposure_days"] == data["exposure_days"]


def test_no_view_without_the_daily_series_or_a_metric_to_measure(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    data = generate(seed=5, n_units=200)
    data.write(warehouse, "checkout")
    watermark = dataclasses.replace(warehouse.watermark(), last_ingested_at=AS_OF)
    metrics = {m.key: m for m in METRICS}
    plan = dataclasses.replace(build_plan(spec(), metrics, top_n=2), daily=False)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=watermark)
    assert with_exposure_days(warehouse=warehouse, plan=plan, snapshot=snapshot) == snapshot
    ratio_only = spec().model_copy(
        update={
            "metrics": spec().metrics.model_copy(
                update={
                    "primary": "pro_revenue_per_session",
                    "secondary": [],
                    "guardrails": [],
                }
            )
        }
    )
    plan = build_plan(ratio_only, metrics, top_n=2)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=watermark)
    viewed = with_exposure_days(warehouse=warehouse, plan=plan, snapshot=snapshot)
    assert "exposure_days" not in viewed.to_json()
    # a plan whose settings are not the snapshot's gets no view (its numbers would not match)
    other = build_plan(spec(), metrics, top_n=2)
    assert with_exposure_days(warehouse=warehouse, plan=other, snapshot=snapshot) == snapshot


def test_the_novelty_scenario_fades(tmp_path: Path) -> None:
    """The simulated feed redesign (+40% clicks on a unit's first day, halving every two
    days towards +5%): the effect by day since exposure falls, and reads as fading."""
    from tests.simulate.conftest import analysed_scenario

    snapshot = analysed_scenario(tmp_path, "novelty_effect", units=8_000, novelty=True)
    (trend,) = snapshot.exposure_day_trends
    assert trend.metric == "nv-clicks" and trend.shape == "fading"
    assert trend.slope is not None and trend.slope < 0 and trend.p_value is not None
    points = sorted(snapshot.exposure_days, key=lambda p: p.days_since_exposure)
    assert points[0].days_since_exposure == 0
    # the data ends on day 21 (analysed long after): later days only for earlier units
    assert points[-1].control_n is not None and points[0].control_n is not None
    assert points[-1].control_n < points[0].control_n / 4
    # day 0 averages the lift over its 24 h (≈ +35%); a week on it is near the lasting +5%
    assert points[0].rel_effect is not None and points[0].rel_effect > 0.2
    late = [p.rel_effect for p in points if 8 <= p.days_since_exposure <= 14]
    assert len(late) == 7 and float(np.mean(late)) < 0.1


def _days(treatment_means: list[float], n: float = 2000.0) -> ExposureDayAggregates:
    """Sums of a count metric: control mean 1 every day, the treatment's means as given,
    per-unit variance 1 in both arms."""
    k = len(treatment_means)
    means = np.stack([np.ones(k), np.array(treatment_means)], axis=1)  # (days, variants)
    units = np.full((k, 2), n)
    sums = units * means
    sums_sq = (units - 1) * 1.0 + units * means**2
    return ExposureDayAggregates((1,), units, sums[None], sums_sq[None])


@pytest.mark.parametrize(
    ("means", "shape"),
    [
        ([1 + 0.4 * 0.7**k for k in range(10)], "fading"),
        ([1.1] * 10, "steady"),
        ([1.05 + 0.03 * k for k in range(10)], "growing"),
        ([1.4, 1.2, 1.1], "too_few_days"),
    ],
)
def test_trend_shapes(means: list[float], shape: str) -> None:
    plan = build_plan(spec(), {m.key: m for m in METRICS}, top_n=2)
    points, (trend,) = exposure_day_results(plan, _days(means), results=[])
    assert trend.metric == "orders" and trend.variant == "b" and trend.shape == shape
    assert trend.days == len(means) == len(points)
    # each point is Welch's test from the same summary statistics
    for k, point in enumerate(points):
        welch = sps.ttest_ind_from_stats(means[k], 1.0, 2000, 1.0, 1.0, 2000, equal_var=False)
        assert point.days_since_exposure == k
        assert point.p_value == pytest.approx(welch.pvalue, rel=1e-9, abs=1e-300)
        assert point.rel_effect == pytest.approx(means[k] - 1.0, rel=1e-12)

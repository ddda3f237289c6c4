"""Named covariates (``plan.covariates``): a numeric exposure attribute and another metric's
pre-period value adjust metrics by regression, in the same warehouse pass — checked against
statsmodels OLS on the per-unit values (outcome ~ 1 + treatment + centred covariates), on
DuckDB and PostgreSQL, and pinned."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.snapshot import Snapshot
from splitlab.errors import ValidationError
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, Dataset, generate, per_unit, spec

DEFINITIONS = {m.key: m for m in METRICS}
HIST_CAP = 150.0
COVARIATES = [
    {"name": "hist", "attribute": "hist_rev", "capping": {"type": "absolute", "value": HIST_CAP}},
    {"name": "pre_orders", "metric": "orders", "days": 10, "metrics": ["revenue", "converted"]},
]


def _with_history(dataset: Dataset) -> Dataset:
    """Give units a numeric ``hist_rev`` attribute from their pre-period purchases (plus a few
    that are text, missing or boolean: those count as 0)."""
    rng = np.random.default_rng(0)
    before: dict[str, float] = {}
    for event in dataset.events:
        if event.name == "purchase" and event.value is not None:
            before[event.unit_id] = before.get(event.unit_id, 0.0) + event.value
    for k, unit in enumerate(dataset.units):
        value: Any = round(before.get(unit.unit_id, 0.0) * 0.5 + float(rng.normal(0, 5)), 3)
        if k % 17 == 0:
            value = str(value)
        elif k % 23 == 0:
            value = True
        if k % 29 == 0:
            continue
        unit.attributes = {**unit.attributes, "hist_rev": value}
    return dataset


def _hist(unit: Any) -> float:
    value = unit.attributes.get("hist_rev")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return min(float(value), HIST_CAP)


def _pre_orders(dataset: Dataset) -> dict[str, float]:
    exposed = {u.unit_id: u.exposed_at for u in dataset.units}
    counts: dict[str, float] = {}
    for event in dataset.events:
        start = exposed[event.unit_id]
        if event.name == "purchase" and start - timedelta(days=10) <= event.occurred_at < start:
            counts[event.unit_id] = counts.get(event.unit_id, 0.0) + 1.0
    return counts


@pytest.fixture
def analysed(warehouse: Warehouse) -> tuple[Dataset, Snapshot]:
    dataset = _with_history(generate(seed=9, n_units=900))
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(covariates=COVARIATES, segments=["country"]), DEFINITIONS)
    return dataset, run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())


def _design(dataset: Dataset, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = per_unit(dataset, DEFINITIONS[metric])
    pre = _pre_orders(dataset)
    rows, y, t = [], [], []
    for unit in dataset.included():
        if unit.variant not in ("control", "b"):
            continue
        outcome, own = values[unit.unit_id]
        z = [_hist(unit), pre.get(unit.unit_id, 0.0)]
        if DEFINITIONS[metric].cuped_days:
            z = [float(own or 0.0), *z]
        rows.append(z)
        y.append(float(outcome or 0.0))
        t.append(1.0 if unit.variant == "b" else 0.0)
    return np.array(y), np.array(t), np.array(rows)


PINNED = {
    "revenue": {
        "abs_effect": 0.750914582506315,
        "p_value": 0.6314167552408172,
        "variance_reduction": 0.4826264995695738,
    },
    "converted": {
        "abs_effect": 0.0010842977604754722,
        "p_value": 0.9695511915902669,
        "variance_reduction": 0.1547374028992582,
    },
}


@pytest.mark.parametrize("metric", ["revenue", "converted"])
def test_matches_statsmodels_ols(analysed: tuple[Dataset, Snapshot], metric: str) -> None:
    dataset, snapshot = analysed
    entry = snapshot.result(metric, "b").to_json()
    y, t, z = _design(dataset, metric)
    fit = sm.OLS(y, np.column_stack([np.ones(y.size), t, z - z.mean(axis=0)])).fit()
    low, high = fit.conf_int(alpha=0.05)[1]
    assert entry["abs_effect"] == pytest.approx(fit.params[1], rel=1e-9)
    assert (entry["abs_ci_low"], entry["abs_ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert entry["statistic"] == pytest.approx(fit.tvalues[1], rel=1e-9)
    assert entry["p_value"] == pytest.approx(fit.pvalues[1], rel=1e-9)
    assert entry["df"] == fit.df_resid
    # raw means stay the plain arm averages; the adjusted ones differ by the effect
    assert entry["control_mean"] == pytest.approx(y[t == 0].mean(), rel=1e-9)
    assert entry["treatment_mean"] == pytest.approx(y[t == 1].mean(), rel=1e-9)
    adjusted = entry["treatment_mean_adjusted"] - entry["control_mean_adjusted"]
    assert adjusted == pytest.approx(fit.params[1], rel=1e-9)
    # variance reduction against the unadjusted Welch difference
    welch = y[t == 0].var(ddof=1) / (t == 0).sum() + y[t == 1].var(ddof=1) / (t == 1).sum()
    assert entry["variance_reduction"] == pytest.approx(1 - fit.bse[1] ** 2 / welch, rel=1e-9)
    own = ["pre:revenue"] if metric == "revenue" else []
    assert entry["covariates"] == [*own, "hist", "pre_orders"]
    assert {k: entry[k] for k in PINNED[metric]} == pytest.approx(PINNED[metric], rel=1e-9)


def test_segment_cells_and_other_metrics(analysed: tuple[Dataset, Snapshot]) -> None:
    dataset, snapshot = analysed
    # a segment cell is its own regression on that cell's units
    row = next(
        r for r in snapshot.results if r.metric == "converted" and r.segment and r.variant == "b"
    )
    assert row.segment is not None
    y, t, z = _design(dataset, "converted")
    country = [
        u.attributes.get("country", "(none)")
        for u in dataset.included()
        if u.variant in ("control", "b")
    ]
    mask = np.array([c == row.segment.value for c in country])
    if row.segment.value == "other":
        pytest.skip("the first segment row is the 'other' bucket")
    fit = sm.OLS(
        y[mask], np.column_stack([np.ones(mask.sum()), t[mask], z[mask] - z[mask].mean(axis=0)])
    ).fit()
    assert row.abs_effect == pytest.approx(fit.params[1], rel=1e-9)
    assert row.p_value == pytest.approx(fit.pvalues[1], rel=1e-9)
    # "hist" adjusts every binary, count and sum metric (orders too); ratio and quantile never
    assert snapshot.result("orders", "b").covariates == ("hist",)
    assert snapshot.result("pro_revenue_per_session", "b").covariates is None
    assert snapshot.result("latency_p90", "b").covariates is None
    settings = {c["name"]: c for c in snapshot.settings["covariates"]}
    assert settings["hist"]["adjusts"] == ["converted", "orders", "revenue"]
    assert settings["pre_orders"]["adjusts"] == ["converted", "revenue"]


def test_daily_and_sequential_use_the_adjustment(warehouse: Warehouse) -> None:
    _with_history(generate(seed=2, n_units=400, variants=("control", "b", "c"))).write(
        warehouse, "checkout"
    )
    plan = build_plan(
        spec(variants=("control", "b", "c"), covariates=COVARIATES, engine="sequential"),
        DEFINITIONS,
    )
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    rows = [r for r in snapshot.overall() if r.metric == "revenue"]
    assert [r.variant for r in rows] == ["b", "c"]
    assert all(r.covariates == ("pre:revenue", "hist", "pre_orders") for r in rows)
    assert all(r.p_value is not None and 0 <= r.p_value <= 1 for r in rows)
    days = [p for p in snapshot.daily if p.metric == "revenue" and p.variant == "b"]
    assert days and days[-1].treatment_n == rows[0].treatment_n


@pytest.mark.parametrize(
    ("covariates", "message"),
    [
        ([{"name": "a", "metric": "nope"}], "not the experiment's"),
        ([{"name": "a", "metric": "latency_p90"}], "not binary, count or sum"),
        ([{"name": "a", "attribute": "x", "metrics": ["latency_p90"]}], "cannot adjust"),
        ([{"name": "a", "attribute": "x"}, {"name": "a", "attribute": "y"}], "repeats"),
    ],
)
def test_bad_covariates_are_refused(covariates: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_plan(spec(covariates=covariates), DEFINITIONS)


@pytest.mark.parametrize(
    "covariate",
    [
        {"name": "a"},
        {"name": "a", "attribute": "x", "metric": "orders"},
        {"name": "a", "attribute": "$.x"},
        {"name": "a", "metric": "orders", "days": 0},
    ],
)
def test_malformed_covariates_fail_validation(covariate: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        spec(covariates=[covariate])


def test_covariates_are_checked_for_balance(analysed: tuple[Dataset, Snapshot]) -> None:
    """A named covariate is a pre-exposure measurement: the variants should not differ on it
    (Welch's test on the per-unit covariate, as scipy computes it)."""
    from scipy import stats as scipy_stats

    from splitlab.analysis.snapshot import CheckName

    dataset, snapshot = analysed
    checks = [
        c
        for c in snapshot.checks(CheckName.PRE_PERIOD_IMBALANCE)
        if c.metric is None and "Covariate" in c.message
    ]
    assert [c.message.split("'")[1] for c in checks] == ["hist", "pre_orders"]
    units = [u for u in dataset.included() if u.variant in ("control", "b")]
    hist = {v: np.array([_hist(u) for u in units if u.variant == v]) for v in ("control", "b")}
    expected = scipy_stats.ttest_ind(hist["b"], hist["control"], equal_var=False).pvalue
    assert checks[0].value == pytest.approx(expected, rel=1e-9)
    assert checks[0].severity.value == ("warning" if expected < 0.001 else "info")

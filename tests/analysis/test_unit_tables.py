"""Per-unit tables (``source: units`` metrics): a file with one row per unit is imported into
``unit_values`` and its columns back metrics, joined to the exposures by unit id in the same
analysis pass as the event metrics — checked against scipy/statsmodels on the per-unit values
built here from the file, on DuckDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.snapshot import Snapshot
from splitlab.domain import Covariate, ExperimentSpec, MetricDefinition
from splitlab.errors import ValidationError
from splitlab.warehouse import Warehouse
from splitlab.warehouse.schema import DUCKDB_DDL
from tests.analysis.builders import METRICS, START, Dataset, generate, per_unit

CAP = 180.0
UNIT_METRICS = [
    MetricDefinition.model_validate(
        {
            "key": "revenue_30d",
            "kind": "sum",
            "source": "units",
            "column": "revenue_30d",
            "capping": {"type": "absolute", "value": CAP},
        }
    ),
    MetricDefinition.model_validate(
        {"key": "converted_7d", "kind": "binary", "source": "units", "column": "conversions_7d"}
    ),
    MetricDefinition.model_validate(
        {"key": "orders_7d", "kind": "count", "source": "units", "column": "conversions_7d"}
    ),
    MetricDefinition.model_validate(
        {
            "key": "revenue_median",
            "kind": "quantile",
            "quantile": 0.5,
            "source": "units",
            "column": "revenue_30d",
        }
    ),
]
DEFINITIONS = {m.key: m for m in [*METRICS, *UNIT_METRICS]}


def _spec(secondary: list[str]) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "key": "checkout",
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True},
                {"key": "b", "weight": 0.5},
            ],
            "metrics": {"primary": "converted", "secondary": secondary},
            "plan": {"segments": ["country"]},
            "start_at": START.isoformat(),
        }
    )


def _plan_name(k: int) -> str | None:
    """The unit table's text attribute of the k-th row (missing for some)."""
    return None if k % 10 == 0 else ("pro" if k % 3 == 0 else "free")


def _hist(unit: str, revenue: float | None) -> float | None:
    """A pre-period covariate correlated with revenue_30d (missing for some units)."""
    if unit.endswith("3"):
        return None
    return round((revenue or 0.0) * 0.6 + sum(map(ord, unit)) % 17, 3)


def _unit_file(dataset: Dataset, path: Path) -> dict[str, tuple[float | None, float | None]]:
    """A unit table for most of the experiment's units plus strangers: revenue_30d (some
    missing), conversions_7d and a text column (skipped). Returns unit → (revenue, conv)."""
    rng = np.random.default_rng(4)
    rows: dict[str, tuple[float | None, float | None]] = {}
    for k, unit in enumerate(dataset.units):
        if k % 11 == 0:
            continue  # no row: both values missing
        lift = 6.0 if unit.variant == "b" else 0.0
        revenue = None if k % 7 == 0 else round(float(rng.gamma(1.2, 40.0)) + lift, 4)
        conv = float(rng.poisson(0.6 if unit.variant == "b" else 0.5))
        rows[unit.unit_id] = (revenue, conv)
    for k in range(50):
        rows[f"stranger-{k}"] = (1000.0, 5.0)  # never exposed: must not count
    table = pa.table(
        {
            "user_id": list(rows),
            "revenue_30d": [r for r, _ in rows.values()],
            "conversions_7d": [int(c) if c is not None else None for _, c in rows.values()],
            "plan_name": [_plan_name(k) for k in range(len(rows))],
            "hist_28d": [_hist(u, r) for u, (r, _) in rows.items()],
        }
    )
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return rows


@pytest.fixture(params=["csv", "parquet"])
def analysed(
    warehouse: Warehouse, tmp_path: Path, request: pytest.FixtureRequest
) -> tuple[Dataset, dict[str, Any], Snapshot]:
    dataset = generate(seed=12, n_units=700)
    dataset.write(warehouse, "checkout")
    path = tmp_path / f"users.{request.param}"
    rows = _unit_file(dataset, path)
    report = warehouse.import_units(path, mapping={"unit_id": "user_id"})
    assert report.rejected == 0 and report.written
    assert report.accepted == len(rows)
    assert report.values == sum(
        (r is not None) + (c is not None) + (_hist(u, r) is not None) for u, (r, c) in rows.items()
    )
    assert [c["use"] for c in report.columns] == [
        "unit_id",
        "value",
        "value",
        "attribute",
        "value",
    ]
    keys = [m.key for m in UNIT_METRICS]
    plan = build_plan(_spec(["orders", *keys]), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    return dataset, rows, snapshot


def _arms(
    dataset: Dataset, rows: dict[str, Any], pick: int, transform: Any
) -> tuple[np.ndarray, np.ndarray]:
    out = {}
    for variant in ("control", "b"):
        values = []
        for unit in dataset.included():
            if unit.variant != variant:
                continue
            value = rows.get(unit.unit_id, (None, None))[pick]
            values.append(transform(value))
        out[variant] = np.array(values, float)
    return out["control"], out["b"]


def test_sum_column_matches_welch_on_the_capped_values(
    analysed: tuple[Dataset, dict[str, Any], Snapshot],
) -> None:
    dataset, rows, snapshot = analysed
    y_c, y_t = _arms(dataset, rows, 0, lambda v: min(v or 0.0, CAP))
    entry = snapshot.result("revenue_30d", "b").to_json()
    welch = scipy_stats.ttest_ind(y_t, y_c, equal_var=False)
    assert entry["control_mean"] == pytest.approx(y_c.mean(), rel=1e-12)
    assert entry["treatment_mean"] == pytest.approx(y_t.mean(), rel=1e-12)
    assert entry["abs_effect"] == pytest.approx(y_t.mean() - y_c.mean(), rel=1e-10)
    assert entry["statistic"] == pytest.approx(welch.statistic, rel=1e-9)
    assert entry["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    units = {v.variant: v.n for v in snapshot.units}
    assert units == {"control": y_c.size, "b": y_t.size}  # strangers never counted


def test_binary_and_count_columns(analysed: tuple[Dataset, dict[str, Any], Snapshot]) -> None:
    dataset, rows, snapshot = analysed
    y_c, y_t = _arms(dataset, rows, 1, lambda v: 1.0 if (v or 0) > 0 else 0.0)
    entry = snapshot.result("converted_7d", "b").to_json()
    z, p = proportions_ztest([y_t.sum(), y_c.sum()], [y_t.size, y_c.size])
    assert entry["statistic"] == pytest.approx(z, rel=1e-9)
    assert entry["p_value"] == pytest.approx(p, rel=1e-9)
    c_c, c_t = _arms(dataset, rows, 1, lambda v: v or 0.0)
    counts = snapshot.result("orders_7d", "b").to_json()
    assert counts["p_value"] == pytest.approx(
        scipy_stats.ttest_ind(c_t, c_c, equal_var=False).pvalue, rel=1e-9
    )


def test_quantile_column_leaves_missing_units_out(
    analysed: tuple[Dataset, dict[str, Any], Snapshot],
) -> None:
    dataset, rows, snapshot = analysed
    entry = snapshot.result("revenue_median", "b").to_json()
    present = {
        variant: np.array(
            [
                rows[u.unit_id][0]
                for u in dataset.included()
                if u.variant == variant and rows.get(u.unit_id, (None,))[0] is not None
            ]
        )
        for variant in ("control", "b")
    }
    assert entry["control_mean"] == pytest.approx(np.quantile(present["control"], 0.5))
    assert entry["treatment_mean"] == pytest.approx(np.quantile(present["b"], 0.5))


def test_event_metrics_unchanged_in_the_same_pass(
    warehouse: Warehouse, analysed: tuple[Dataset, dict[str, Any], Snapshot]
) -> None:
    dataset, _rows, snapshot = analysed
    alone = run_analysis(
        warehouse=warehouse,
        plan=build_plan(_spec(["orders"]), DEFINITIONS),
        watermark=warehouse.watermark(),
    )
    for key in ("converted", "orders"):
        assert snapshot.result(key, "b").to_json()["p_value"] == pytest.approx(
            alone.result(key, "b").to_json()["p_value"], rel=1e-12
        )
    values = per_unit(dataset, DEFINITIONS["converted"])
    converted = sum(values[u.unit_id][0] or 0 for u in dataset.included() if u.variant == "b")
    n_b = sum(1 for u in dataset.included() if u.variant == "b")
    entry = snapshot.result("converted", "b").to_json()
    assert entry["treatment_mean"] == pytest.approx(converted / n_b, rel=1e-12)
    # segment rows exist for the unit metrics too (segments ride on the same units)
    assert any(r.segment is not None and r.metric == "revenue_30d" for r in snapshot.results)


def test_a_reimport_replaces_values_and_invalidates_the_cache_key(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("unit_id,score\nu1,1.5\nu2,2\n")
    before = warehouse.watermark().cache_key()
    warehouse.import_units(path)
    middle = warehouse.watermark()
    assert middle.cache_key() != before
    path.write_text("unit_id,score\nu1,7\n")
    warehouse.import_units(path)
    stored = sorted(warehouse.query("SELECT unit_id, name, value FROM unit_values"))
    assert stored == [("u1", "score", 7.0), ("u2", "score", 2.0)]
    assert warehouse.watermark().cache_key() != middle.cache_key()
    assert warehouse.watermark().last_ingested_at == middle.last_ingested_at  # events' time


def test_hostile_rows_are_rejected_with_reasons(warehouse: Warehouse, tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table(
            {
                "uid": ["ok", "", "dup", "dup", "x" * 300, "tab\tin", "big", "nan"],
                "v": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1e300, float("nan")],
            }
        ),
        path,
    )
    report = warehouse.import_units(path, mapping={"uid": "unit_id"})
    reasons = {r["reason"].split(":")[0] + ":" + str(r["examples"]) for r in report.reasons}
    assert report.rows == 8 and report.rejected == 6, report.reasons
    assert "unit_id:[2]" in reasons  # blank id
    assert "unit_id:[4]" in reasons  # the second 'dup'
    assert "v:[7]" in reasons and "v:[8]" in reasons
    stored = sorted(warehouse.query("SELECT unit_id, value FROM unit_values"))
    assert stored == [("dup", 3.0), ("ok", 1.0)]


@pytest.mark.parametrize(
    ("content", "mapping", "message"),
    [
        ("unit_id\nu1\n", {}, "numeric or text column"),
        ("user,v\nu1,1\n", {}, "no column 'unit_id'"),
        ("user,v\nu1,1\n", {"v": "score"}, "maps only its unit id"),
        ('unit_id,"bad name!"\nu1,1\n', {}, "property names"),
    ],
)
def test_refused_files(
    warehouse: Warehouse, tmp_path: Path, content: str, mapping: dict[str, str], message: str
) -> None:
    path = tmp_path / "f.csv"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message):
        warehouse.import_units(path, mapping=mapping)


@pytest.mark.parametrize(
    "payload",
    [
        {"key": "m", "kind": "sum", "source": "units"},
        {"key": "m", "kind": "ratio", "source": "units", "column": "c", "denominator_event": "e"},
        {"key": "m", "kind": "sum", "source": "units", "column": "c", "event": "purchase"},
        {"key": "m", "kind": "sum", "source": "units", "column": "c", "window_hours": 24},
        {"key": "m", "kind": "sum", "event": "purchase", "column": "c"},
        {"key": "m", "kind": "sum"},
    ],
)
def test_definition_rules(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"units metric|events metric|column is only"):
        MetricDefinition.model_validate(payload)


def test_events_metrics_keep_their_settings_hash() -> None:
    plan = build_plan(_spec(["orders"]), DEFINITIONS)
    for entry in plan.settings()["metrics"]:
        assert "source" not in entry["definition"] and "column" not in entry["definition"]
    units = build_plan(_spec(["revenue_30d"]), DEFINITIONS).settings()["metrics"][1]
    assert units["definition"]["source"] == "units"
    assert units["definition"]["column"] == "revenue_30d"


def test_a_unit_table_column_as_covariate(
    warehouse: Warehouse, analysed: tuple[Dataset, dict[str, Any], Snapshot]
) -> None:
    """plan.covariates [{column: hist_28d}] adjusts revenue_30d by regression: the effect,
    SE and p of statsmodels OLS of y on 1 + treatment + the centred covariate (missing 0)."""
    import statsmodels.api as sm

    dataset, rows, _snapshot = analysed
    spec = _spec(["revenue_30d"]).model_copy(deep=True)
    spec.plan.covariates = [
        Covariate.model_validate({"name": "hist", "column": "hist_28d", "metrics": ["revenue_30d"]})
    ]
    plan = build_plan(spec, DEFINITIONS)
    assert plan.settings()["covariates"][0]["column"] == "hist_28d"
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    entry = snapshot.result("revenue_30d", "b").to_json()
    y, t, z = [], [], []
    for unit in dataset.included():
        revenue, _ = rows.get(unit.unit_id, (None, None))
        y.append(min(revenue or 0.0, CAP))
        t.append(1.0 if unit.variant == "b" else 0.0)
        z.append(_hist(unit.unit_id, revenue) or 0.0 if unit.unit_id in rows else 0.0)
    y_, t_, z_ = np.array(y), np.array(t), np.array(z)
    fit = sm.OLS(y_, np.column_stack([np.ones(y_.size), t_, z_ - z_.mean()])).fit()
    assert entry["abs_effect"] == pytest.approx(fit.params[1], rel=1e-9)
    assert entry["p_value"] == pytest.approx(fit.pvalues[1], rel=1e-9)
    assert entry["covariates"] == ["hist"]
    assert entry["variance_reduction"] > 0.1


def test_the_sizing_baseline_reads_the_unit_table(
    warehouse: Warehouse, analysed: tuple[Dataset, dict[str, Any], Snapshot]
) -> None:
    """The wizard's baseline of a units metric: the capped column's mean over the units
    active in the window (every unit here), missing values 0."""
    from splitlab.analysis.baseline import _compute

    dataset, rows, _snapshot = analysed
    found = _compute(warehouse, DEFINITIONS["revenue_30d"], 3650)
    assert found is not None
    ids = {u.unit_id for u in dataset.units}
    values = np.array([min(rows.get(u, (None, None))[0] or 0.0, CAP) for u in ids])
    assert found.units == len(ids)
    assert found.mean == pytest.approx(values.mean(), rel=1e-12)
    assert found.variance == pytest.approx(values.var(ddof=1), rel=1e-9)


def test_a_units_metric_without_its_column_is_a_no_data_warning(warehouse: Warehouse) -> None:
    dataset = generate(seed=2, n_units=200)
    dataset.write(warehouse, "checkout")
    plan = build_plan(_spec(["revenue_30d"]), DEFINITIONS)
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    found = [c for c in snapshot.checks("no_data") if c.metric == "revenue_30d"]
    assert found and "column 'revenue_30d' of the unit table" in found[0].message
    assert snapshot.result("revenue_30d", "b").to_json()["reason"]  # nothing to compare


def test_a_read_only_warehouse_without_the_unit_table(tmp_path: Path) -> None:
    """A DuckDB file made before unit_values existed, opened read-only (no schema upgrade):
    the watermark and the unit table read as empty instead of failing every analysis."""
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(DUCKDB_DDL)
    con.execute("DROP TABLE unit_values")
    con.close()
    old = Warehouse.open(f"duckdb:///{path}", read_only=True)
    try:
        assert old.watermark().units == ""
        table = old.unit_values_table()
        assert table.count().to_pyarrow().as_py() == 0
    finally:
        old.close()


def test_unit_table_text_attribute_as_segment(
    warehouse: Warehouse, analysed: tuple[Dataset, dict[str, Any], Snapshot]
) -> None:
    """plan.unit_segments [plan_name]: rows per value of the unit table's text column
    ("(none)" without one), each cell's Welch test as scipy's on its units."""
    dataset, rows, _snapshot = analysed
    spec = _spec(["revenue_30d"]).model_copy(deep=True)
    spec.plan.segments = []
    spec.plan.unit_segments = ["plan_name"]
    plan = build_plan(spec, DEFINITIONS)
    assert plan.settings()["unit_segments"] == ["plan_name"]
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    label = {unit: _plan_name(k) or "(none)" for k, unit in enumerate(rows)}
    cells = [
        r.to_json()
        for r in snapshot.results
        if r.segment is not None and r.metric == "revenue_30d" and r.variant == "b"
    ]
    assert {c["segment"]["value"] for c in cells} == {"pro", "free", "(none)"}
    for cell in cells:
        arms = {
            arm: np.array(
                [
                    min(rows.get(u.unit_id, (None, None))[0] or 0.0, CAP)
                    for u in dataset.included()
                    if u.variant == arm
                    and label.get(u.unit_id, "(none)") == cell["segment"]["value"]
                ]
            )
            for arm in ("control", "b")
        }
        welch = scipy_stats.ttest_ind(arms["b"], arms["control"], equal_var=False)
        assert cell["treatment_n"] == arms["b"].size
        assert cell["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)


def test_unit_segments_may_not_repeat_an_exposure_segment() -> None:
    spec = _spec(["revenue_30d"]).model_copy(deep=True)
    spec.plan.unit_segments = ["country"]  # also an exposure segment in _spec
    with pytest.raises(ValidationError, match="unit_segments"):
        build_plan(spec, DEFINITIONS)


def test_hostile_text_attributes_are_rejected(warehouse: Warehouse, tmp_path: Path) -> None:
    path = tmp_path / "attrs.parquet"
    pq.write_table(
        pa.table({"unit_id": ["a", "b", "c", "d"], "tier": ["gold", "x" * 201, "a\x07b", "  "]}),
        path,
    )
    report = warehouse.import_units(path)
    assert report.rejected == 2, report.reasons
    assert {r["reason"] for r in report.reasons} == {
        "tier: at most 200 characters",
        "tier: must not contain control characters",
    }
    stored = sorted(warehouse.query("SELECT unit_id, text FROM unit_attributes"))
    assert stored == [("a", "gold")]  # a blank value is a missing one
    assert report.attributes == 1

"""``plan.binary_test``: binary metrics take the two-proportion z-test by default, or Welch's
t-test on the 0/1 per-unit values — each checked against statsmodels on the per-unit values,
on DuckDB and PostgreSQL, and pinned."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.snapshot import Snapshot
from splitlab.domain import BinaryTest, ExperimentSpec
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, generate, per_unit, spec

DEFINITIONS = {m.key: m for m in METRICS}

# Pinned on generate(seed=5, n_units=800); the statsmodels checks derive the same numbers.
PINNED_Z = {"statistic": 0.2945316253262772, "p_value": 0.7683517010276735}
PINNED_WELCH = {
    "statistic": 0.2941440112695617,
    "p_value": 0.7687258951050367,
    "df": 782.2298080614509,
}


def _arms(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    values = per_unit(dataset, DEFINITIONS["converted"])
    arms = {
        variant: np.array(
            [values[u.unit_id][0] for u in dataset.included() if u.variant == variant], float
        )
        for variant in ("control", "b")
    }
    return arms["control"], arms["b"]


def _converted(snapshot: Snapshot) -> dict[str, Any]:
    return snapshot.result("converted", "b").to_json()


@pytest.fixture
def analysed(warehouse: Warehouse) -> tuple[Any, dict[str, Snapshot]]:
    dataset = generate(seed=5, n_units=800)
    dataset.write(warehouse, "checkout")
    out = {}
    for test in ("z", "welch"):
        plan = build_plan(spec(binary_test=test), DEFINITIONS)
        out[test] = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    return dataset, out


def test_default_is_the_two_proportion_z_test(analysed: tuple[Any, dict[str, Snapshot]]) -> None:
    dataset, snapshots = analysed
    y_c, y_t = _arms(dataset)
    entry = _converted(snapshots["z"])
    z, p = proportions_ztest([y_t.sum(), y_c.sum()], [y_t.size, y_c.size])
    low, high = confint_proportions_2indep(
        y_t.sum(), y_t.size, y_c.sum(), y_c.size, method="wald", compare="diff"
    )
    assert entry["statistic"] == pytest.approx(z, rel=1e-9)
    assert entry["p_value"] == pytest.approx(p, rel=1e-9)
    assert (entry["abs_ci_low"], entry["abs_ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert entry["df"] is None
    assert {k: entry[k] for k in PINNED_Z} == pytest.approx(PINNED_Z, rel=1e-9)
    assert "binary_test" not in snapshots["z"].settings  # the default keeps older hashes


def test_welch_on_the_zero_one_values(analysed: tuple[Any, dict[str, Snapshot]]) -> None:
    dataset, snapshots = analysed
    y_c, y_t = _arms(dataset)
    entry = _converted(snapshots["welch"])
    compare = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_c))
    t, p, df = compare.ttest_ind(usevar="unequal")
    low, high = compare.tconfint_diff(alpha=0.05, usevar="unequal")
    assert entry["statistic"] == pytest.approx(t, rel=1e-9)
    assert entry["p_value"] == pytest.approx(p, rel=1e-9)
    assert entry["df"] == pytest.approx(df, rel=1e-9)
    assert (entry["abs_ci_low"], entry["abs_ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert {k: entry[k] for k in PINNED_WELCH} == pytest.approx(PINNED_WELCH, rel=1e-9)
    # the two tests really differ, and only on the binary metric
    assert entry["statistic"] != pytest.approx(_converted(snapshots["z"])["statistic"], rel=1e-6)
    z_orders = snapshots["z"].result("orders", "b").to_json()
    assert snapshots["welch"].result("orders", "b").to_json() == z_orders
    assert snapshots["welch"].settings["binary_test"] == "welch"
    assert snapshots["welch"].settings_hash != snapshots["z"].settings_hash


def test_the_option_is_validated() -> None:
    assert ExperimentSpec.model_validate({"key": "k"}).plan.binary_test is BinaryTest.Z
    with pytest.raises(ValueError, match="binary_test"):
        spec(binary_test="chi2")

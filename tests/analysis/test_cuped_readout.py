"""With CUPED, a result reports each arm's raw mean and n (what a user's own SQL gives)
beside the adjusted means that its effect and CI compare — checked against statsmodels on
per-unit values, and pinned."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from splitlab.analysis import build_plan, run_analysis
from splitlab.analysis.render import render_markdown, render_table
from splitlab.analysis.snapshot import Snapshot
from splitlab.warehouse import Warehouse
from tests.analysis.builders import METRICS, generate, per_unit, spec

DEFINITIONS = {m.key: m for m in METRICS}
REVENUE = DEFINITIONS["revenue"]  # sum per unit, CUPED on 7 pre-period days

# Pinned on generate(seed=3, n_units=700); the checks below derive the same numbers with
# statsmodels, so a change here means the data or the method changed, not rounding.
PINNED = {
    "control_n": 337.0,
    "treatment_n": 348.0,
    "control_mean": 26.67765578635015,
    "treatment_mean": 29.574683908045973,
    "control_mean_adjusted": 26.470031524934495,
    "treatment_mean_adjusted": 29.77574533361228,
    "abs_effect": 3.305713808677787,
    "abs_ci_low": -1.1589004130868652,
    "abs_ci_high": 7.770328030442439,
    "rel_effect": 0.12488514815571117,
    "p_value": 0.14646433175670348,
}


@pytest.fixture
def snapshot(warehouse: Warehouse) -> tuple[Any, Snapshot]:
    dataset = generate(seed=3, n_units=700)
    dataset.write(warehouse, "checkout")
    plan = build_plan(spec(), DEFINITIONS)
    return dataset, run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())


def overall(snapshot: Snapshot, metric: str) -> dict[str, Any]:
    """The overall result of ``metric`` in the snapshot's JSON form."""
    (entry,) = [r.to_json() for r in snapshot.overall() if r.metric == metric]
    return entry


def test_raw_means_beside_the_adjusted_estimate(snapshot: tuple[Any, Snapshot]) -> None:
    dataset, result = snapshot
    entry = overall(result, "revenue")
    values = per_unit(dataset, REVENUE)
    arms = {}
    for variant in ("control", "b"):
        pairs = np.array(
            [values[u.unit_id] for u in dataset.included() if u.variant == variant], dtype=float
        )
        arms[variant] = pairs[:, 0], pairs[:, 1]
    (y_c, x_c), (y_t, x_t) = arms["control"], arms["b"]

    # what a user's SQL gives: AVG(revenue) and COUNT(*) per arm
    assert entry["control_n"] == y_c.size and entry["treatment_n"] == y_t.size
    assert entry["control_mean"] == pytest.approx(y_c.mean(), rel=1e-9)
    assert entry["treatment_mean"] == pytest.approx(y_t.mean(), rel=1e-9)

    # CUPED independently: θ from an OLS of y on x over both arms (statsmodels), then a Welch
    # comparison of the per-unit adjusted values y − θ (x − x̄)
    y, x = np.concatenate([y_c, y_t]), np.concatenate([x_c, x_t])
    theta = sm.OLS(y, sm.add_constant(x)).fit().params[1]
    x_bar = x.mean()
    z_c, z_t = y_c - theta * (x_c - x_bar), y_t - theta * (x_t - x_bar)
    assert entry["control_mean_adjusted"] == pytest.approx(z_c.mean(), rel=1e-9)
    assert entry["treatment_mean_adjusted"] == pytest.approx(z_t.mean(), rel=1e-9)
    compare = CompareMeans(DescrStatsW(z_t), DescrStatsW(z_c))
    _, p_value, _ = compare.ttest_ind(usevar="unequal")
    low, high = compare.tconfint_diff(alpha=0.05, usevar="unequal")
    assert entry["abs_effect"] == pytest.approx(z_t.mean() - z_c.mean(), rel=1e-9)
    assert entry["abs_ci_low"] == pytest.approx(low, rel=1e-9)
    assert entry["abs_ci_high"] == pytest.approx(high, rel=1e-9)
    assert entry["p_value"] == pytest.approx(p_value, rel=1e-9)
    assert entry["rel_effect"] == pytest.approx(z_t.mean() / z_c.mean() - 1, rel=1e-9)

    # the adjustment matters on this data, so raw and adjusted cannot be confused unseen
    assert abs(entry["control_mean"] - entry["control_mean_adjusted"]) > 1e-3
    assert entry["abs_effect"] != pytest.approx(y_t.mean() - y_c.mean(), rel=1e-3)
    assert {k: entry[k] for k in PINNED} == pytest.approx(PINNED, rel=1e-9)


def test_only_cuped_metrics_carry_adjusted_means(snapshot: tuple[Any, Snapshot]) -> None:
    _, result = snapshot
    data = result.to_json()
    for entry in data["results"] + data["daily"]:
        cuped = DEFINITIONS[entry["metric"]].cuped_days > 0
        assert ("control_mean_adjusted" in entry) is cuped
        assert ("treatment_mean_adjusted" in entry) is cuped


def test_readouts_show_raw_and_adjusted_means(snapshot: tuple[Any, Snapshot]) -> None:
    _, result = snapshot
    entry = overall(result, "revenue")
    raw, adjusted = f"{entry['control_mean']:.4g}", f"{entry['control_mean_adjusted']:.4g}"
    n = f"(n={entry['control_n']:,.0f})"
    for text in (render_table(result), render_markdown(result)):
        (line,) = [row for row in text.splitlines() if row.lstrip("| ").startswith("revenue")]
        assert "revenue (CUPED)" in line
        assert f"{raw} {n} adj {adjusted}" in line
        assert "effect and CI compare the adjusted means" in text
        (plain,) = [row for row in text.splitlines() if row.lstrip("| ").startswith("orders")]
        assert "adj" not in plain and "(n=" in plain

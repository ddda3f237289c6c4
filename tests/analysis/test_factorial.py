"""Factorial analysis and interactions between experiments, end to end: the shipped
scenarios ``factorial_2x2`` and ``interacting_experiments`` simulated into Splitlab (DuckDB
and PostgreSQL), analysed, checked against statsmodels OLS on the per-unit values of the same
simulated data, and against the scenarios' known truth."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from splitlab.analysis.factorial import analyze_factorial
from splitlab.analysis.interactions import analyze_interactions
from splitlab.errors import NotFoundError, ValidationError
from splitlab.services import Services
from splitlab.simulate import SimulatedData, generate
from splitlab.simulate.run import simulate_into

START = datetime(2024, 5, 1, tzinfo=UTC)


def per_unit(data: SimulatedData) -> pd.DataFrame:
    """One row per unit: its variant, converted (any purchase) and revenue (Σ values)."""
    units = data.exposures.select(["userKey", "variantKey"]).to_pandas()
    units["variantKey"] = units["variantKey"].astype(str)
    events = data.events.select(["userKey", "eventType", "value"]).to_pandas()
    purchases = events[events["eventType"].astype(str) == "purchase"]
    revenue = purchases.groupby("userKey")["value"].sum()
    frame = units.set_index("userKey")
    frame["revenue"] = revenue.reindex(frame.index).fillna(0.0)
    frame["converted"] = frame.index.isin(purchases["userKey"]).astype(float)
    if data.concurrent_exposures is not None:
        other = data.concurrent_exposures.select(["userKey", "variantKey"]).to_pandas()
        frame["other"] = other.set_index("userKey")["variantKey"].astype(str)
    return frame


@pytest.fixture
def factorial_run(services: Services) -> SimulatedData:
    data = generate("factorial_2x2", start=START)
    simulate_into(services, data)
    return data


def test_factorial_2x2_recovers_the_known_interaction(
    services: Services, factorial_run: SimulatedData
) -> None:
    result = analyze_factorial(services=services, key="factorial_2x2")
    assert [(f.name, f.low, f.high) for f in result.factors] == [
        ("layout", "old", "new"),
        ("price", "standard", "low"),
    ]
    assert sum(c.n for c in result.cells) == 40_000
    truth = factorial_run.truth["metrics"]
    for metric in result.metrics:
        if metric.metric == "ff-order-value":
            assert metric.reason == "not_a_unit_mean" and metric.effects == ()
            continue
        mean = {
            v: truth[metric.metric]["overall"][v]["mean"] for v in truth["ff-conversion"]["overall"]
        }
        c, lay, pri, both = (
            mean["control"],
            mean["layout_new"],
            mean["price_low"],
            mean["layout_new_price_low"],
        )
        true_effects = {
            "layout": (lay + both - c - pri) / 2,
            "price": (pri + both - c - lay) / 2,
            "layout × price": (both - pri - lay + c) / 2,
        }
        assert [e.term for e in metric.effects] == list(true_effects)
        for row in metric.effects:
            assert row.ci_low is not None and row.ci_high is not None
            assert row.ci_low <= true_effects[row.term] <= row.ci_high, (metric.metric, row)
            assert row.p_value is not None and row.p_value < 1e-4  # every effect is real
        assert true_effects["layout × price"] > 0
    conversion = next(m for m in result.metrics if m.metric == "ff-conversion")
    interaction = conversion.effects[2]
    assert interaction.effect == pytest.approx(0.02, abs=0.007)  # truth: +2.0 points


def test_factorial_numbers_are_ols_with_effect_coding_on_the_units(
    services: Services, factorial_run: SimulatedData
) -> None:
    result = analyze_factorial(services=services, key="factorial_2x2")
    frame = per_unit(factorial_run)
    levels = {c.variant: c.levels for c in result.cells}
    frame["layout"] = [1.0 if levels[v]["layout"] == "new" else -1.0 for v in frame.variantKey]
    frame["price"] = [1.0 if levels[v]["price"] == "low" else -1.0 for v in frame.variantKey]
    for key, column in (("ff-conversion", "converted"), ("ff-revenue", "revenue")):
        fit = smf.ols(f"{column} ~ layout * price", frame).fit()
        table = anova_lm(fit, typ=3)
        metric = next(m for m in result.metrics if m.metric == key)
        for row, name in zip(metric.effects, ["layout", "price", "layout:price"], strict=True):
            assert row.coefficient == pytest.approx(fit.params[name], rel=1e-8)
            assert row.se == pytest.approx(2 * fit.bse[name], rel=1e-8)
            assert row.p_value == pytest.approx(fit.pvalues[name], rel=1e-6)
            assert row.sum_sq == pytest.approx(table.loc[name, "sum_sq"], rel=1e-8)
            assert row.f == pytest.approx(table.loc[name, "F"], rel=1e-8)
        assert metric.residual_sum_sq == pytest.approx(table.loc["Residual", "sum_sq"], rel=1e-8)
        assert metric.residual_df == fit.df_resid


def test_a_plain_ab_test_is_not_factorial(services: Services, factorial_run: SimulatedData) -> None:
    simulate_into(services, generate("global_positive", units=500, start=START))
    with pytest.raises(ValidationError, match="not factorial"):
        analyze_factorial(services=services, key="global_positive")
    with pytest.raises(NotFoundError):
        analyze_factorial(services=services, key="nope")


def test_interacting_experiments_recover_the_known_interaction(services: Services) -> None:
    data = generate("interacting_experiments", start=START)
    simulate_into(services, data)
    result = analyze_interactions(
        services=services, key="interacting_experiments", other="interacting-banner"
    )
    assert result.units == result.shared == 40_000
    assert result.other_variants == ("control", "banner")
    frame = per_unit(data)
    frame["a"] = (frame.variantKey == "treatment").astype(float)
    frame["b"] = (frame.other == "banner").astype(float)
    truth = data.truth["concurrent"]["interaction"]
    for metric in result.metrics:
        (interaction,) = metric.interactions
        true_value = truth[metric.metric]["treatment"]["banner"]
        assert interaction.ci_low is not None and interaction.ci_high is not None
        assert interaction.ci_low <= true_value <= interaction.ci_high
        assert interaction.p_value is not None and interaction.p_value < 1e-4
        column = "converted" if metric.metric == "ix-conversion" else "revenue"
        fit = smf.ols(f"{column} ~ a * b", frame).fit()
        assert interaction.estimate == pytest.approx(fit.params["a:b"], rel=1e-8)
        assert interaction.se == pytest.approx(fit.bse["a:b"], rel=1e-8)
        assert interaction.p_value == pytest.approx(fit.pvalues["a:b"], rel=1e-6)
        within = {w.other_variant: w for w in metric.within}
        assert within["control"].estimate == pytest.approx(fit.params["a"], rel=1e-8)
        assert metric.f == pytest.approx((fit.params["a:b"] / fit.bse["a:b"]) ** 2, rel=1e-8)
    with pytest.raises(ValidationError, match="itself"):
        analyze_interactions(
            services=services, key="interacting_experiments", other="interacting_experiments"
        )
    with pytest.raises(NotFoundError):
        analyze_interactions(services=services, key="interacting_experiments", other="nope")


def test_experiments_without_shared_units_have_no_interaction(services: Services) -> None:
    simulate_into(services, generate("global_positive", units=500, start=START))
    simulate_into(services, generate("aa_null", units=500, start=START))
    with pytest.raises(ValidationError, match="share no analysed units"):
        analyze_interactions(services=services, key="global_positive", other="aa_null")


def test_the_truth_of_the_joint_model_is_exact() -> None:
    truth = generate("interacting_experiments", units=100, start=START).truth
    within = truth["metrics"]["ix-conversion"]["segments"]["interacting-banner"]
    # 10% base; treatment ×1.2; banner ×1.1; both ×1.2 × 1.1 × 1.25
    assert within["control"]["control"]["mean"] == pytest.approx(0.10, rel=1e-9)
    assert within["control"]["treatment"]["mean"] == pytest.approx(0.12, rel=1e-9)
    assert within["banner"]["control"]["mean"] == pytest.approx(0.11, rel=1e-9)
    assert within["banner"]["treatment"]["mean"] == pytest.approx(0.165, rel=1e-8)
    interaction = truth["concurrent"]["interaction"]["ix-conversion"]["treatment"]["banner"]
    assert interaction == pytest.approx((0.165 - 0.11) - (0.12 - 0.10), rel=1e-8)
    assert np.isclose(
        truth["metrics"]["ix-conversion"]["overall"]["treatment"]["mean"], (0.12 + 0.165) / 2
    )


def test_quantile_and_ratio_metrics_are_listed_not_tested(services: Services) -> None:
    from splitlab.domain import MetricDefinition
    from splitlab.simulate import load_scenario

    base = load_scenario("interacting_experiments")
    extra = [
        MetricDefinition.model_validate(
            {"key": "ix-order-p90", "kind": "quantile", "event": "purchase", "quantile": 0.9}
        ),
        MetricDefinition.model_validate(
            {
                "key": "ix-order-value",
                "kind": "ratio",
                "event": "purchase",
                "denominator_event": "purchase",
            }
        ),
    ]
    metrics = {**base.experiment["metrics"], "secondary": ["ix-order-p90", "ix-order-value"]}
    scenario = base.model_copy(
        update={
            "metrics": [*base.metrics, *extra],
            "experiment": {**base.experiment, "metrics": metrics},
        }
    )
    simulate_into(services, generate(scenario, units=2_000, start=START))
    result = analyze_interactions(
        services=services, key="interacting_experiments", other="interacting-banner"
    )
    reasons = {m.metric: m.reason for m in result.metrics}
    assert reasons == {
        "ix-conversion": "",
        "ix-order-p90": "not_a_unit_mean",
        "ix-order-value": "not_a_unit_mean",
    }

"""The policy engine stage by stage, on hand-built snapshots: each stage's codes, reasons and
evidence, and the always-valid intervals checked against ``splitlab.stats``."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from splitlab import stats
from splitlab.analysis.snapshot import CheckName, Severity
from splitlab.decisions.engine import LABELS, REASONS, DecisionContext, recommend
from splitlab.decisions.evidence import comparisons
from splitlab.decisions.policy import BUILTIN, Policy, parse_policy
from splitlab.decisions.recommendation import Code, Recommendation, Stage
from splitlab.domain import Engine
from splitlab.domain.enums import ThresholdScale

from .snapshots import check, metric, row, snapshot

STOPPED = DecisionContext(status="stopped")
RUNNING = DecisionContext(status="running")
WIN: dict[str, Any] = {"rel": 0.08, "ci": (0.04, 0.12), "p": 0.0001}
FLAT: dict[str, Any] = {"rel": 0.005, "ci": (-0.03, 0.04), "p": 0.78}


def decide(
    snap: object, policy: Policy = BUILTIN, context: DecisionContext = STOPPED
) -> Recommendation:
    result = recommend(snap, policy=policy, context=context)  # type: ignore[arg-type]
    for reason in result.reasons:  # every emitted code is documented
        assert reason.code in REASONS or reason.code.endswith("_critical"), reason.code
    return result


def codes(result: Recommendation, stage: Stage | None = None) -> list[str]:
    return [r.code for r in result.reasons if stage is None or r.stage is stage]


# ------------------------------------------------------------------------------- trust


def test_a_critical_srm_makes_the_experiment_invalid_whatever_the_effect() -> None:
    snap = snapshot(
        metrics=[metric("conv")],
        rows=[row("conv", **WIN)],
        health=[check(CheckName.SRM, Severity.CRITICAL, 4e-6)],
    )
    result = decide(snap)
    assert result.code is Code.INVESTIGATE_INVALID_EXPERIMENT
    assert result.label == "INCOMPLETE"
    assert result.reasons[0].code == "srm_critical"
    assert result.reasons[0].evidence["value"] == 4e-6
    assert codes(result, Stage.PRIMARY) == []  # later stages do not run


def test_multiple_exposure_is_judged_by_the_policy_threshold_not_its_severity() -> None:
    def with_rate(rate: float, severity: Severity) -> Recommendation:
        health = [check(CheckName.MULTIPLE_EXPOSURE, severity, rate)]
        return decide(snapshot(metrics=[metric("conv")], rows=[row("conv", **WIN)], health=health))

    assert with_rate(0.03, Severity.WARNING).code is Code.SHIP_GLOBAL
    blocked = with_rate(0.06, Severity.CRITICAL)
    assert blocked.code is Code.INVESTIGATE_INVALID_EXPERIMENT
    assert blocked.reasons[0].evidence == {"rate": 0.06, "max": 0.05}
    strict = parse_policy({"trust": {"multiple_exposure_max": 0.02}})
    health = [check(CheckName.MULTIPLE_EXPOSURE, Severity.WARNING, 0.03)]
    snap = snapshot(metrics=[metric("conv")], rows=[row("conv", **WIN)], health=health)
    assert decide(snap, strict).code is Code.INVESTIGATE_INVALID_EXPERIMENT


def test_pre_period_imbalance_and_missing_data_are_critical_unless_the_policy_drops_them() -> None:
    for name in (CheckName.PRE_PERIOD_IMBALANCE, CheckName.NO_DATA):
        health = [check(name, Severity.WARNING, 0.0, metric="conv")]
        snap = snapshot(metrics=[metric("conv")], rows=[row("conv", **WIN)], health=health)
        result = decide(snap)
        assert result.code is Code.INVESTIGATE_INVALID_EXPERIMENT
        assert result.reasons[0].code == f"{name.value}_critical"
        lenient = parse_policy({"trust": {"critical_checks": ["srm"]}})
        assert decide(snap, lenient).code is Code.SHIP_GLOBAL
    # a check that is not listed never stops the experiment
    health = [check(CheckName.ALLOCATION_DRIFT, Severity.WARNING, 1e-5)]
    snap = snapshot(metrics=[metric("conv")], rows=[row("conv", **WIN)], health=health)
    assert decide(snap).code is Code.SHIP_GLOBAL


def test_an_experiment_without_a_primary_metric_cannot_be_decided() -> None:
    snap = snapshot(metrics=[metric("conv", "secondary")], rows=[row("conv", **WIN)])
    result = decide(snap)
    assert result.code is Code.INVESTIGATE_INVALID_EXPERIMENT
    assert codes(result) == ["no_primary_metric"]


# -------------------------------------------------------------------------- guardrails


def guarded(rel: float, ci: tuple[float, float], *, key: str = "latency-ms", margin: float = 0.05):
    return snapshot(
        metrics=[metric("conv"), metric(key, "guardrail", direction="decrease", margin=margin)],
        rows=[row("conv", **WIN), row(key, rel=rel, ci=ci, p=0.0001, control_mean=100.0)],
    )


def test_a_guardrail_breach_holds_and_a_latency_breach_reads_as_a_latency_regression() -> None:
    result = decide(guarded(0.10, (0.08, 0.12)))
    assert result.code is Code.HOLD_GUARDRAIL_RISK
    assert result.label == "PENDING (LATENCY REGRESSION)"
    assert result.variant == "treatment"
    first = result.reasons[1]  # trust_ok, then the deciding guardrail reason
    assert (first.stage, first.code, first.metric) == (
        Stage.GUARDRAILS,
        "guardrail_breach",
        "latency-ms",
    )
    assert first.evidence["margin"] == 0.05 and first.evidence["harm"] == pytest.approx(0.10)
    assert "+10.0%" in first.message and "5.0%" in first.message
    other = decide(guarded(0.10, (0.08, 0.12), key="errors"))
    assert other.code is Code.HOLD_GUARDRAIL_RISK and other.label == "DO NOT SHIP"


def test_a_running_experiment_is_rolled_back_only_when_the_always_valid_interval_confirms() -> None:
    confirmed = decide(guarded(0.10, (0.08, 0.12)), context=RUNNING)
    assert confirmed.code is Code.ROLLBACK and confirmed.label == "DO NOT SHIP"
    assert confirmed.reasons[1].evidence["always_valid_confirmed"] is True
    # significant at the fixed horizon, but a daily check would stop A/A tests too often:
    # the wider always-valid interval still reaches the margin, so it only holds
    unconfirmed = decide(guarded(0.10, (0.06, 0.14)), context=RUNNING)
    assert unconfirmed.code is Code.HOLD_GUARDRAIL_RISK
    assert unconfirmed.reasons[1].evidence["always_valid_confirmed"] is False
    low, high = unconfirmed.reasons[1].evidence["always_valid_ci"]
    assert low < 0.05 < 0.06 and high > 0.14
    no_rollback = parse_policy({"guardrails": {"rollback_when_running": False}})
    assert (
        decide(guarded(0.10, (0.08, 0.12)), no_rollback, RUNNING).code is Code.HOLD_GUARDRAIL_RISK
    )


def test_unproven_non_inferiority_holds_at_the_end_but_waits_for_maturity_while_running() -> None:
    unproven = (0.01, (-0.02, 0.07))  # point within 5%, the CI reaches past it
    result = decide(guarded(*unproven))
    assert result.code is Code.HOLD_GUARDRAIL_RISK
    assert "guardrail_not_non_inferior" in codes(result)
    assert decide(guarded(*unproven), context=RUNNING).code is Code.HOLD_GUARDRAIL_RISK
    young = guarded(*unproven).model_copy(update={"days": guarded(*unproven).days[:3]})
    early = decide(young, context=RUNNING)
    assert early.code is Code.KEEP_RUNNING and "guardrail_not_non_inferior" in codes(early)
    off = parse_policy({"guardrails": {"non_inferiority": False}})
    assert decide(guarded(*unproven), off).code is Code.SHIP_GLOBAL
    assert decide(guarded(0.0, (-0.01, 0.01))).code is Code.SHIP_GLOBAL


def test_a_ratio_rule_breaches_when_the_treatment_mean_passes_the_ratio() -> None:
    snap = snapshot(
        metrics=[metric("ctr"), metric("lat-ms", "secondary", direction="decrease")],
        rows=[
            row("ctr", **WIN),
            row("lat-ms", rel=0.30, ci=(0.28, 0.32), p=1e-9, control_mean=120.0),
        ],
    )
    rule = parse_policy({"guardrails": {"rules": [{"metric": "lat-ms", "max_ratio": 1.25}]}})
    result = decide(snap, rule)
    assert result.code is Code.HOLD_GUARDRAIL_RISK
    assert result.label == "PENDING (LATENCY REGRESSION)"
    reason = next(r for r in result.reasons if r.code == "ratio_rule_breach")
    assert reason.evidence["ratio"] == pytest.approx(1.30)
    assert reason.evidence["treatment_mean"] == pytest.approx(156.0)
    assert decide(snap, rule, RUNNING).code is Code.ROLLBACK
    loose = parse_policy({"guardrails": {"rules": [{"metric": "lat-ms", "max_ratio": 1.35}]}})
    result = decide(snap, loose)
    assert result.code is Code.SHIP_GLOBAL and "ratio_rule_ok" in codes(result)
    assert decide(snap).code is Code.SHIP_GLOBAL  # no rule, not a guardrail


def test_a_significantly_bad_primary_is_rolled_back_while_running_even_before_maturity() -> None:
    bad: dict[str, Any] = {"rel": -0.20, "ci": (-0.25, -0.15), "p": 1e-12}
    young = snapshot(metrics=[metric("conv")], rows=[row("conv", **bad)], days=2)
    result = decide(young, context=RUNNING)
    assert result.code is Code.ROLLBACK and result.variant == "treatment"
    assert result.reasons[1].code == "primary_harm_running"
    stopped = decide(young)
    assert stopped.code is Code.KILL
    assert "early_on_always_valid_bound" in codes(stopped, Stage.MATURITY)


def test_always_valid_bounds_match_the_stats_confidence_sequence() -> None:
    control = stats.SampleStats(n=np.array(4000.0), sum=np.array(400.0), sum_sq=np.array(400.0))
    treatment = stats.SampleStats(n=np.array(4100.0), sum=np.array(470.0), sum_sq=np.array(470.0))
    fixed = stats.welch_ttest(control, treatment)
    sequence = stats.sequential_test(control, treatment, alpha=0.05, tuning=5000.0)
    snap_row = row(
        "conv",
        rel=float(fixed.rel_effect),
        ci=(float(fixed.rel_ci_low), float(fixed.rel_ci_high)),
        p=float(fixed.p_value),
        control_mean=float(fixed.control_mean),
        control_n=4000.0,
        treatment_n=4100.0,
        df=float(fixed.df),
        abs_effect=float(fixed.abs_effect),
        abs_ci_low=float(fixed.abs_ci_low),
        abs_ci_high=float(fixed.abs_ci_high),
    )
    data = comparisons([snap_row], engine=Engine.FREQUENTIST, alpha=0.05, tuning=5000.0)
    # Welch's t interval → SE → the z-based confidence sequence of stats.sequential_test
    assert data.se[0] == pytest.approx(
        (float(sequence.abs_ci_high) - float(sequence.abs_effect))
        / float(stats.sequential.cs_halfwidth_factor(np.array(8100.0), 0.05, 5000.0)),
        rel=1e-9,
    )
    assert data.av_p[0] == pytest.approx(float(sequence.p_value), rel=1e-6)
    # the relative bounds: the delta-method interval widened by factor / t-quantile is the
    # sequence's own relative interval
    assert (data.av_rel_low[0], data.av_rel_high[0]) == pytest.approx(
        (float(sequence.rel_ci_low), float(sequence.rel_ci_high)), rel=1e-9
    )
    assert (data.av_rel_low[0], data.av_rel_high[0]) == pytest.approx(
        (-0.07833871, 0.37102164), rel=1e-6
    )  # pinned
    assert data.av_rel_low[0] < fixed.rel_ci_low and data.av_rel_high[0] > fixed.rel_ci_high
    seq = comparisons([snap_row], engine=Engine.SEQUENTIAL, alpha=0.05, tuning=5000.0)
    assert seq.av_rel_low[0] == snap_row.rel_ci_low  # already always valid: kept as is


# ---------------------------------------------------------------------- maturity, power


def test_too_few_units_days_or_open_windows_keep_it_running() -> None:
    base: dict[str, Any] = {"metrics": [metric("conv")], "rows": [row("conv", **WIN)]}
    few = decide(snapshot(**base, units=50))
    assert few.code is Code.KEEP_RUNNING and few.label == "INCOMPLETE"
    assert few.reasons[1].code == "too_few_units" and few.reasons[1].evidence["smallest"] == 50
    short = decide(snapshot(**base, days=5))
    assert short.code is Code.KEEP_RUNNING
    assert short.evidence == {"days": 5, "min_days": 7, "days_remaining": 2}
    immature = [check(CheckName.MATURITY, Severity.WARNING, 0.7, metric="conv")]
    assert decide(snapshot(**base, health=immature)).code is Code.KEEP_RUNNING
    relaxed = parse_policy({"maturity": {"require_mature_windows": False, "min_days": 3}})
    assert decide(snapshot(**base, health=immature, days=5), relaxed).code is Code.SHIP_GLOBAL


def test_short_of_the_planned_sample_is_pending_with_the_projected_days() -> None:
    noisy = row(
        "conv", rel=0.05, ci=(-0.10, 0.20), p=0.5, n=2000, n_required=40_000, days_remaining=120
    )
    result = decide(snapshot(metrics=[metric("conv")], rows=[noisy], units=2000))
    assert result.code is Code.PENDING_UNDERPOWERED
    assert result.label == "PENDING (UNDERPOWERED)"
    assert result.evidence["days_remaining"] == 120 and result.evidence["required"] == 40_000
    assert "120 more day" in result.summary
    # a fixed-horizon result short of its sample decides early only on an always-valid bound
    significant = row(
        "conv", rel=0.06, ci=(0.005, 0.115), p=0.03, n=2000, n_required=40_000, days_remaining=120
    )
    early = decide(snapshot(metrics=[metric("conv")], rows=[significant], units=2000))
    assert early.code is Code.PENDING_UNDERPOWERED
    decisive = row(
        "conv", rel=0.30, ci=(0.20, 0.40), p=1e-9, n=2000, n_required=40_000, days_remaining=120
    )
    result = decide(snapshot(metrics=[metric("conv")], rows=[decisive], units=2000))
    assert result.code is Code.SHIP_GLOBAL
    assert "early_on_always_valid_bound" in codes(result, Stage.MATURITY)
    patient = parse_policy({"sequential": {"early_on_always_valid_bounds": False}})
    waited = decide(snapshot(metrics=[metric("conv")], rows=[decisive], units=2000), patient)
    assert waited.code is Code.PENDING_UNDERPOWERED
    enough = row("conv", **WIN, n_required=9000, days_remaining=0)
    assert "planned_sample_reached" in codes(
        decide(snapshot(metrics=[metric("conv")], rows=[enough]))
    )


# ------------------------------------------------------------------------------ primary


def test_the_primary_must_be_significant_and_above_the_minimum_lift() -> None:
    snap = snapshot(metrics=[metric("conv")], rows=[row("conv", **WIN)])
    result = decide(snap)
    assert (result.code, result.label, result.variant) == (Code.SHIP_GLOBAL, "SHIP", "treatment")
    assert result.evidence["p_value_adjusted"] == 0.0001
    relative = parse_policy({"primary": {"min_lift": {"metrics": {"conv": "10%"}}}})
    held = decide(snap, relative)
    assert held.code is Code.HOLD_INCONCLUSIVE and held.label == "DO NOT SHIP"
    assert "below_minimum_lift" in codes(held)
    # absolute: +8% of 0.10 is 0.008
    assert (
        decide(snap, parse_policy({"primary": {"min_lift": {"default": 0.0079}}})).code
        is Code.SHIP_GLOBAL
    )
    assert (
        decide(snap, parse_policy({"primary": {"min_lift": {"default": 0.0081}}})).code
        is Code.HOLD_INCONCLUSIVE
    )


def test_a_large_point_estimate_that_is_not_significant_never_ships() -> None:
    value: dict[str, Any] = {"value": {"metrics": {"conv": 1000.0}, "units_per_day": 10_000}}
    snap = snapshot(metrics=[metric("conv")], rows=[row("conv", rel=0.5, ci=(-0.2, 1.2), p=0.16)])
    result = decide(snap, parse_policy(value))
    assert result.code is Code.HOLD_INCONCLUSIVE
    assert "primary_not_significant" in codes(result)
    assert result.value[0].per_day > 0  # however large its "business value"


def test_a_significantly_bad_primary_kills_and_lower_is_better_metrics_win_downwards() -> None:
    bad = row("conv", rel=-0.05, ci=(-0.09, -0.01), p=0.01)
    assert decide(snapshot(metrics=[metric("conv")], rows=[bad])).code is Code.KILL
    # while running, a fixed-horizon loss the always-valid interval does not confirm still
    # decides in the primary stage (mature experiment): roll back
    assert (
        decide(snapshot(metrics=[metric("conv")], rows=[bad]), context=RUNNING).code
        is Code.ROLLBACK
    )
    fewer = row("errors", rel=-0.05, ci=(-0.09, -0.01), p=0.01)
    down = snapshot(metrics=[metric("errors", direction="decrease")], rows=[fewer])
    assert decide(down).code is Code.SHIP_GLOBAL


def test_a_b_n_ships_the_best_arm_by_the_corrected_p_value_and_reports_the_others() -> None:
    rows = [
        row("conv", "b", rel=0.06, ci=(0.02, 0.10), p=0.002, p_adjusted=0.004),
        row("conv", "a", rel=0.12, ci=(0.08, 0.16), p=1e-8, p_adjusted=2e-8),
        row("conv", "c", rel=0.20, ci=(0.00, 0.40), p=0.03, p_adjusted=0.06),
    ]
    snap = snapshot(metrics=[metric("conv")], rows=rows, variants=("control", "a", "b", "c"))
    result = decide(snap)
    assert (result.code, result.variant) == (Code.SHIP_GLOBAL, "a")
    assert result.evidence["others"] == ["b", "c"]
    also = [r for r in result.reasons if r.code == "arm_also_wins"]
    assert [r.variant for r in also] == ["b"]
    c = next(r for r in result.reasons if r.variant == "c" and r.stage is Stage.PRIMARY)
    assert c.code == "primary_not_significant"  # raw p 0.03, corrected 0.06


# ----------------------------------------------------------------------------- segments


def segmented(
    ps: list[float], rels: list[float], *, n: float = 2000, values: list[str] | None = None
):
    values = values or ["US", "DE", "GB", "IN"][: len(ps)]
    rows = [row("conv", **FLAT)]
    for value, p, rel in zip(values, ps, rels, strict=True):
        half = abs(rel) / 2 if p < 0.05 else abs(rel) + 0.1
        rows.append(
            row("conv", rel=rel, ci=(rel - half, rel + half), p=p, n=n, segment=("country", value))
        )
    return snapshot(metrics=[metric("conv")], rows=rows)


def test_a_win_confined_to_a_segment_ships_to_that_segment_only() -> None:
    result = decide(segmented([0.6, 0.0004, 0.7, 0.5], [0.01, 0.35, -0.01, 0.02]))
    assert result.code is Code.SHIP_TARGETED_SEGMENTS and result.label == "SHIP"
    assert result.segments == [{"name": "country", "value": "DE"}]
    win = next(r for r in result.reasons if r.code == "segment_win")
    assert win.evidence["p_value_adjusted"] == pytest.approx(0.0016)  # Holm: 4 × 0.0004
    assert win.evidence["tested"] == 4 and "country=DE" in result.summary


def test_segments_are_corrected_with_holm_or_bonferroni_as_the_policy_says() -> None:
    snap = segmented([0.001, 0.02, 0.9], [0.3, 0.25, 0.0])
    assert decide(snap).segments == [
        {"name": "country", "value": "US"},
        {"name": "country", "value": "DE"},
    ]  # Holm: 0.003 and 2 × 0.02 = 0.04
    bonferroni = parse_policy({"segments": {"correction": "bonferroni"}})
    assert decide(snap, bonferroni).segments == [{"name": "country", "value": "US"}]  # 3 × 0.02


def test_no_targeted_ship_with_harm_elsewhere_small_segments_or_the_catch_all() -> None:
    harmed = decide(segmented([0.0004, 0.0004], [0.35, -0.30]))
    assert harmed.code is Code.HOLD_INCONCLUSIVE
    assert {"segment_win", "segment_harm"} <= set(codes(harmed, Stage.SEGMENTS))
    small = decide(segmented([0.6, 0.0004], [0.01, 0.35], n=150))
    assert small.code is Code.HOLD_INCONCLUSIVE and "segment_too_small" in codes(small)
    other = decide(segmented([0.6, 0.0004], [0.01, 0.35], values=["US", "other"]))
    assert other.code is Code.HOLD_INCONCLUSIVE and "no_segment_win" in codes(other)
    off = parse_policy({"segments": {"enabled": False}})
    assert decide(segmented([0.6, 0.0004], [0.01, 0.35]), off).code is Code.HOLD_INCONCLUSIVE


# ----------------------------------------------------------------------------- Bayesian


def bayesian(chance: float, loss: float, horizon: Severity, value: float | None = 14.0):
    r = row(
        "conv",
        rel=0.05,
        ci=(0.01, 0.09),
        p=0.01,
        engine=Engine.BAYESIAN,
        chance_to_win=chance,
        risk_treatment=loss,
        risk_control=0.01,
    )
    health = [check(CheckName.BAYESIAN_HORIZON, horizon, value)]
    return snapshot(metrics=[metric("conv")], rows=[r], health=health, engine=Engine.BAYESIAN)


def test_bayesian_plans_decide_at_the_horizon_or_on_the_expected_loss_rule() -> None:
    early = decide(bayesian(0.97, 0.01, Severity.WARNING))
    assert early.code is Code.KEEP_RUNNING and "bayesian_before_horizon" in codes(early)
    allowed = decide(bayesian(0.97, 0.0005, Severity.WARNING))
    assert allowed.code is Code.SHIP_GLOBAL and "bayesian_early_decision" in codes(allowed)
    at_horizon = decide(bayesian(0.97, 0.01, Severity.INFO))
    assert at_horizon.code is Code.SHIP_GLOBAL and "bayesian_at_horizon" in codes(at_horizon)
    assert at_horizon.reasons[-1].evidence["chance_to_win"] == 0.97
    assert decide(bayesian(0.90, 0.01, Severity.INFO)).code is Code.HOLD_INCONCLUSIVE
    assert decide(bayesian(0.02, 0.01, Severity.INFO)).code is Code.KILL
    stricter = parse_policy({"bayesian": {"chance_to_win": 0.99}})
    assert decide(bayesian(0.97, 0.01, Severity.INFO), stricter).code is Code.HOLD_INCONCLUSIVE


# ------------------------------------------------------------------------------- value


def test_expected_net_value_per_day_with_its_confidence_interval() -> None:
    policy = parse_policy(
        {
            "value": {
                "metrics": {"conv": 50.0},
                "cost_per_unit": {"treatment": 0.1, "control": 0.05},
                "units_per_day": 1000,
                "currency": "USD",
            }
        }
    )
    result = decide(snapshot(metrics=[metric("conv")], rows=[row("conv", **WIN)]), policy)
    (value,) = result.value
    # per unit: 50 × 0.008 − (0.10 − 0.05) = 0.35; SE of the effect: 0.008 / 1.96
    se = 0.1 * 0.04 / stats_z()
    assert value.per_day == pytest.approx(1000 * 0.35)
    assert value.ci_low == pytest.approx(1000 * (0.35 - stats_z() * 50 * se))
    assert value.ci_high == pytest.approx(1000 * (0.35 + stats_z() * 50 * se))
    assert value.currency == "USD" and result.reasons[-1].code == "expected_value"
    assert result.code is Code.SHIP_GLOBAL  # value sits beside the code


def stats_z() -> float:
    from scipy import stats as scipy_stats

    return float(scipy_stats.norm.ppf(0.975))


def test_labels_cover_every_code_and_the_reason_list_is_documented() -> None:
    assert set(LABELS) == set(Code)
    assert all(isinstance(text, str) and text for text in REASONS.values())
    assert not math.isnan(BUILTIN.trust.multiple_exposure_max)


def test_margins_and_minimum_lifts_stated_by_the_analysis_are_used_on_their_scale() -> None:
    absolute = ThresholdScale.ABSOLUTE
    # +8 ms on 100 ms: within the plan's relative 10%, beyond the row's absolute 5 ms
    latency = row(
        "lat-ms", rel=0.08, ci=(0.06, 0.10), p=1e-6, control_mean=100.0,
        margin=5.0, margin_scale=absolute,
    )  # fmt: skip
    snap = snapshot(
        metrics=[metric("conv"), metric("lat-ms", "guardrail", direction="decrease", margin=0.10)],
        rows=[row("conv", **WIN), latency],
    )
    result = decide(snap)
    assert result.code is Code.HOLD_GUARDRAIL_RISK
    breach = result.reasons[1]
    assert breach.code == "guardrail_breach" and breach.evidence["scale"] == "absolute"
    assert breach.evidence["effect"] == pytest.approx(8.0) and "5 (absolute)" in breach.message
    # the experiment's own minimum lift (absolute 0.01 > the 0.008 won) unless the policy names one
    lifted = row("conv", **WIN, min_lift=0.01, min_lift_scale=absolute)
    plain = snapshot(metrics=[metric("conv")], rows=[lifted])
    assert decide(plain).code is Code.HOLD_INCONCLUSIVE
    assert "below_minimum_lift" in codes(decide(plain))
    policy = parse_policy({"primary": {"min_lift": {"metrics": {"conv": "5%"}}}})
    assert decide(plain, policy).code is Code.SHIP_GLOBAL


def test_daily_guardrail_checks_on_always_valid_intervals_keep_false_stops_below_alpha() -> None:
    """A/A: 1,000 experiments, a guardrail checked after each of 14 days (cumulative data).
    Stopping on the fixed-horizon interval at the first look that shows harm stops far more
    than α/2 of them; the engine's always-valid interval stays below it."""
    rng = np.random.default_rng(7)
    sims, days, per_day = 1000, 14, 200
    values = rng.normal(100.0, 30.0, size=(2, sims, days, per_day))
    n = np.cumsum(np.full((sims, days), float(per_day)), axis=1)
    sums = np.cumsum(values.sum(axis=3), axis=2)
    squares = np.cumsum((values**2).sum(axis=3), axis=2)
    control = stats.SampleStats(n=n, sum=sums[0], sum_sq=squares[0])
    treatment = stats.SampleStats(n=n, sum=sums[1], sum_sq=squares[1])
    fixed = stats.welch_ttest(control, treatment)
    columns = {
        "abs_effect": fixed.abs_effect,
        "abs_ci_low": fixed.abs_ci_low,
        "abs_ci_high": fixed.abs_ci_high,
        "rel_effect": fixed.rel_effect,
        "rel_ci_low": fixed.rel_ci_low,
        "rel_ci_high": fixed.rel_ci_high,
        "p_value": fixed.p_value,
        "control_n": n,
        "treatment_n": n,
        "df": fixed.df,
    }
    flat = {name: np.ravel(values).tolist() for name, values in columns.items()}
    rows = [
        SimpleNamespace(p_value_adjusted=None, **{name: flat[name][i] for name in flat})
        for i in range(sims * days)
    ]
    data = comparisons(rows, engine=Engine.FREQUENTIST, alpha=0.05, tuning=5000.0)  # type: ignore[arg-type]
    # lower is better (latency): harm is an interval above zero
    naive = (data.rel_low.reshape(sims, days) > 0).any(axis=1).mean()
    always_valid = (data.av_rel_low.reshape(sims, days) > 0).any(axis=1).mean()
    assert naive > 0.06  # peeking at a 2.5%-per-look one-sided test, 14 times
    assert always_valid <= 0.025
    assert (naive, always_valid) == pytest.approx((0.092, 0.004), abs=1e-9)  # pinned, seed 7

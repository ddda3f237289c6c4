"""What the engine's sentences say, checked against its numbers (found trying the demo as a new
user): no p-value above 1, an interval named for what it is, no "more days" for an experiment
that has stopped, no "every guardrail is fine" beside "no estimate yet"."""

from __future__ import annotations

import re

from splitlab.decisions.engine import DecisionContext, recommend
from splitlab.decisions.policy import BUILTIN
from splitlab.decisions.recommendation import Code, Recommendation, Stage

from .snapshots import metric, row, snapshot

STOPPED = DecisionContext(status="stopped")
RUNNING = DecisionContext(status="running")


def _decide(snap: object, context: DecisionContext = STOPPED) -> Recommendation:
    return recommend(snap, policy=BUILTIN, context=context)  # type: ignore[arg-type]


def _p_values(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"\bp = ([0-9.e+-]+)", text)]


def test_an_early_decision_on_three_arms_never_reads_a_p_value_above_one() -> None:
    # checkout-redesign-abc: treatment_a wins early on its always-valid interval; treatment_b's
    # always-valid p times the two arms used to read "adjusted p = 2"
    short = {"n": 4000.0, "n_required": 47_000.0}
    rows = [
        row("conv", "treatment_a", rel=0.26, ci=(0.12, 0.40), p=1e-5, days_remaining=60, **short),
        row("conv", "treatment_b", rel=0.018, ci=(-0.10, 0.14), p=0.77, days_remaining=60, **short),
    ]
    snap = snapshot(
        metrics=[metric("conv")],
        rows=rows,
        variants=("control", "treatment_a", "treatment_b"),
        units=4000,
    )
    result = _decide(snap, RUNNING)
    assert result.code is Code.SHIP_GLOBAL and result.variant == "treatment_a"
    primary = [r for r in result.reasons if r.stage is Stage.PRIMARY]
    assert {r.variant for r in primary} >= {"treatment_a", "treatment_b"}
    for reason in primary:
        assert "always-valid CI" in reason.message, reason.message
        values = _p_values(reason.message)
        assert values and all(0.0 <= v <= 1.0 for v in values), reason.message
        assert 0.0 <= reason.evidence["p_value_adjusted"] <= 1.0
    loser = next(r for r in primary if r.variant == "treatment_b")
    assert loser.evidence["p_value_adjusted"] == 1.0
    assert {r.evidence["p_kind"] for r in primary} == {"always_valid_bonferroni"}
    late = _decide(
        snapshot(metrics=[metric("conv")], rows=[row("conv", rel=0.1, ci=(0.05, 0.15), p=1e-4)])
    )
    assert late.reasons[-1].evidence["p_kind"] == "fixed_horizon_adjusted"


def test_an_interval_excluding_zero_beside_an_adjusted_p_above_alpha_shows_the_raw_p_too() -> None:
    # saved-lists: "CI +0.06% to +11.50%, adjusted p = 0.0828" read as a contradiction
    rows = [row("orders", rel=0.058, ci=(0.0006, 0.115), p=0.041, p_adjusted=0.0828)]
    result = _decide(snapshot(metrics=[metric("orders")], rows=rows))
    assert result.code is Code.HOLD_INCONCLUSIVE
    message = next(r.message for r in result.reasons if r.stage is Stage.PRIMARY)
    assert "p = 0.041, adjusted p = 0.0828" in message, message
    same = _decide(
        snapshot(
            metrics=[metric("orders")], rows=[row("orders", rel=0.01, ci=(-0.02, 0.04), p=0.5)]
        )
    )
    message = next(r.message for r in same.reasons if r.stage is Stage.PRIMARY)
    assert "adjusted p = 0.5" in message and ", p = " not in message, message


def test_a_stopped_underpowered_experiment_is_not_told_to_wait_at_the_current_rate() -> None:
    noisy = row(
        "conv", rel=0.05, ci=(-0.1, 0.2), p=0.5, n=2000, n_required=442_218, days_remaining=1531
    )
    snap = snapshot(metrics=[metric("conv")], rows=[noisy], units=2000)
    ended = _decide(snap, DecisionContext(status="killed"))
    assert ended.code is Code.PENDING_UNDERPOWERED
    assert "stopped at 2,000 of the 442,218" in ended.summary, ended.summary
    assert "1,531 more day(s) had it kept running" in ended.summary
    assert "current rate" not in ended.reasons[-1].message
    assert ended.evidence["ended"] is True
    live = _decide(snap, RUNNING)
    assert "about 1,531 more day(s) to the planned sample" in live.summary, live.summary
    assert live.evidence["ended"] is False


def test_guardrails_without_an_estimate_are_not_called_within_their_margin() -> None:
    none_yet = row("latency", rel=float("nan"), ci=(float("nan"), float("nan")), p=float("nan"))
    rows = [row("conv", rel=0.01, ci=(-0.02, 0.04), p=0.5), none_yet]
    metrics = [metric("conv"), metric("latency", "guardrail", direction="decrease", margin=0.05)]
    result = _decide(snapshot(metrics=metrics, rows=rows))
    guard = [r.code for r in result.reasons if r.stage is Stage.GUARDRAILS]
    assert "guardrail_no_estimate" in guard and "guardrails_ok" not in guard
    fine = row("tokens", rel=0.01, ci=(-0.01, 0.03), p=0.4)
    metrics.append(metric("tokens", "guardrail", direction="decrease", margin=0.10))
    both = _decide(snapshot(metrics=metrics, rows=[*rows, fine]))
    ok = next(r for r in both.reasons if r.code == "guardrails_ok")
    assert "1 comparison(s) have no estimate yet" in ok.message, ok.message
    assert "Every guardrail is within" not in ok.message


def _caveats(snap: object, rec: Recommendation) -> str:
    from splitlab.decisions.readout import build_readout

    made = build_readout(snapshot=snap, recommendation=rec)  # type: ignore[arg-type]
    return " ".join(next(s for s in made.sections if s.key == "caveats").bullets)


def test_the_peeking_caveat_agrees_with_a_decision_on_always_valid_bounds() -> None:
    # the report of checkout-redesign-abc said "a significant result now is not yet a result"
    # beside "deciding early is safe"
    decisive = row(
        "conv", rel=0.30, ci=(0.20, 0.40), p=1e-9, n=2000, n_required=40_000, days_remaining=120
    )
    snap = snapshot(metrics=[metric("conv")], rows=[decisive], units=2000)
    early = _decide(snap, RUNNING)
    assert early.code is Code.SHIP_GLOBAL
    text = _caveats(snap, early)
    assert "does not rest on them: it decides early on the always-valid interval" in text
    assert "not yet a result" not in text
    noisy = row(
        "conv", rel=0.05, ci=(-0.1, 0.2), p=0.5, n=2000, n_required=40_000, days_remaining=120
    )
    waiting_snap = snapshot(metrics=[metric("conv")], rows=[noisy], units=2000)
    waiting = _decide(waiting_snap, RUNNING)
    assert waiting.code is Code.PENDING_UNDERPOWERED
    assert "not yet a result" in _caveats(waiting_snap, waiting)


def test_messages_name_the_control_by_its_key() -> None:
    # payments-4-2-canary's control is "stable": "vs control" read as a variant it has not got
    bad = row("errors", "canary", rel=1.7, ci=(1.2, 2.2), p=1e-12)
    snap = snapshot(
        metrics=[metric("errors", direction="decrease")],
        rows=[bad],
        variants=("stable", "canary"),
    )
    result = _decide(snap, RUNNING)
    assert result.code is Code.ROLLBACK
    assert "vs stable" in result.summary and "vs control" not in result.summary, result.summary


def test_a_readout_under_a_failed_trust_check_says_its_numbers_are_not_results() -> None:
    # landing-redirect: "What happened" read the effects as results above the failed SRM
    from splitlab.analysis.snapshot import CheckName, Severity
    from splitlab.decisions.readout import build_readout

    from .snapshots import check

    rows = [row("conv", rel=0.003, ci=(-0.044, 0.05), p=0.9)]
    srm = check(CheckName.SRM, Severity.CRITICAL, 6.9e-6)
    snap = snapshot(metrics=[metric("conv")], rows=rows, health=[srm])
    rec = _decide(snap)
    assert rec.code is Code.INVESTIGATE_INVALID_EXPERIMENT
    made = build_readout(snapshot=snap, recommendation=rec)  # type: ignore[arg-type]
    results = next(s for s in made.sections if s.key == "results")
    assert any("critical health check failed (srm)" in p for p in results.paragraphs)
    healthy = snapshot(metrics=[metric("conv")], rows=rows)
    made = build_readout(snapshot=healthy, recommendation=_decide(healthy))  # type: ignore[arg-type]
    results = next(s for s in made.sections if s.key == "results")
    assert not any("critical health check" in p for p in results.paragraphs)

"""The decision policy engine: a snapshot and a resolved policy → a :class:`Recommendation`.

``recommend(snapshot, *, policy, context)`` is pure (no I/O).  The stages run in the order of
issue #14, each adding :class:`Reason`\\ s (stage, machine code from :data:`REASONS`, a plain
message with its numbers, evidence); the first stage that decides sets the code:

1. **trust** — a critical health finding → ``INVESTIGATE_INVALID_EXPERIMENT``.
2. **guardrails** — a guardrail breached, not shown non-inferior within its margin, or a
   ratio rule broken → ``HOLD_GUARDRAIL_RISK``; while the experiment runs, a breach (or a
   significantly bad primary metric) that its *always-valid* interval confirms →
   ``ROLLBACK`` when ``guardrails.rollback_when_running``.  While running, holds that rest on
   unproven non-inferiority wait until the experiment is mature (stage 3 first).
3. **maturity** — too few units or days, open metric windows → ``KEEP_RUNNING``; short of
   the planned sample without an always-valid result → ``PENDING_UNDERPOWERED`` with the
   projected days.  Bayesian plans: before the horizon, unless the minimum sample is reached
   and the expected loss is below its threshold → ``KEEP_RUNNING``.
4. **primary** — significant (the family-corrected p-value) in the good direction and at
   least the minimum lift → ``SHIP_GLOBAL`` (A/B/n: the best such arm; the others reported);
   significantly bad → ``KILL`` (``ROLLBACK`` while running); else ``HOLD_INCONCLUSIVE``.
   A point estimate that is not significant never ships.
5. **segments** — after an inconclusive primary: pre-registered segments only, Holm or
   Bonferroni across every tested segment value; wins with no significant harm elsewhere →
   ``SHIP_TARGETED_SEGMENTS``.
6. **value** — expected net value per day with its CI, beside the code (never changes it).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import numpy as np

from splitlab.analysis.health import FADING
from splitlab.analysis.snapshot import CheckName, HealthCheck, Severity, Snapshot
from splitlab.decisions.evidence import finite
from splitlab.decisions.guardrails import DECIDING_GUARDRAIL_CODES, guardrail_stage, harmed
from splitlab.decisions.policy import Policy
from splitlab.decisions.recommendation import BusinessValue, Code, Reason, Recommendation, Stage
from splitlab.decisions.stages import (
    ENDED_STATUSES,
    REASONS,
    DecisionContext,
    Outcome,
    Run,
    bayesian_gate,
    business_value,
    min_lift,
    segment_stage,
)
from splitlab.domain import Engine

__all__ = ["LABELS", "REASONS", "DecisionContext", "label_for", "recommend"]

LABELS: dict[Code, str] = {
    Code.SHIP_GLOBAL: "SHIP",
    Code.SHIP_TARGETED_SEGMENTS: "SHIP",
    Code.KILL: "DO NOT SHIP",
    Code.ROLLBACK: "DO NOT SHIP",
    Code.HOLD_GUARDRAIL_RISK: "DO NOT SHIP",
    Code.HOLD_INCONCLUSIVE: "DO NOT SHIP",
    Code.KEEP_RUNNING: "INCOMPLETE",
    Code.PENDING_UNDERPOWERED: "PENDING (UNDERPOWERED)",
    Code.INVESTIGATE_INVALID_EXPERIMENT: "INCOMPLETE",
}
"""Our codes in the ML dashboard's words; a guardrail hold on a latency metric reads
``PENDING (LATENCY REGRESSION)`` (see :func:`label_for`)."""
LATENCY_LABEL = "PENDING (LATENCY REGRESSION)"


def label_for(code: Code, reasons: list[Reason], policy: Policy) -> str:
    """The dashboard label of ``code`` (a latency guardrail hold reads as a latency
    regression)."""
    if code is Code.HOLD_GUARDRAIL_RISK:
        patterns = policy.guardrails.latency_metrics
        for reason in reasons:
            if reason.stage is Stage.GUARDRAILS and reason.code in DECIDING_GUARDRAIL_CODES:
                metric = reason.metric or ""
                if any(fnmatch.fnmatchcase(metric, p) for p in patterns):
                    return LATENCY_LABEL
    return LABELS[code]


def recommend(snapshot: Snapshot, *, policy: Policy, context: DecisionContext) -> Recommendation:
    """The recommendation for ``snapshot`` under ``policy`` (pure; see the module docstring
    for the stages and :data:`REASONS` for every reason code)."""
    run = Run(snapshot, policy, context)
    outcome = _trust(run) or guardrail_stage(run) or _primary_or_segments(run)
    values: list[BusinessValue] = business_value(run.snapshot, run.overall, run.metrics, policy)
    for value in values:
        run.add(
            Stage.VALUE,
            "expected_value",
            f"Shipping {value.variant}: expected net value {value.per_day:,.2f}"
            f"{' ' + value.currency if value.currency else ''} per day "
            f"(CI {value.ci_low:,.2f} to {value.ci_high:,.2f}).",
            variant=value.variant,
            evidence={"per_day": value.per_day, "ci_low": value.ci_low, "ci_high": value.ci_high},
        )
    ordered = _deciding_first(run.reasons, outcome)
    return Recommendation(
        experiment=snapshot.experiment,
        code=outcome.code,
        label=label_for(outcome.code, run.reasons, policy),
        summary=outcome.summary,
        variant=outcome.variant,
        segments=outcome.segments,
        reasons=ordered,
        evidence=outcome.evidence,
        value=values,
        policy=policy.name,
        policy_hash=policy.policy_hash(),
        snapshot_id=snapshot.snapshot_id,
    )


def _deciding_first(reasons: list[Reason], outcome: Outcome) -> list[Reason]:
    """Stage order; within the deciding stage, the deciding reason first."""
    order = list(Stage)
    ranked = sorted(
        enumerate(reasons),
        key=lambda item: (
            order.index(item[1].stage),
            0 if item[1] is outcome.reason else 1,
            item[0],
        ),
    )
    return [reason for _, reason in ranked]


# ---------------------------------------------------------------------------------- trust


def _trust(run: Run) -> Outcome | None:
    policy = run.policy.trust
    bad: list[Reason] = []
    critical = set(policy.critical_checks)
    for check in run.snapshot.health:
        if check.check not in critical:
            continue
        if check.check is CheckName.MULTIPLE_EXPOSURE:
            rate = check.value or 0.0
            if rate > policy.multiple_exposure_max:
                bad.append(
                    run.add(
                        Stage.TRUST,
                        "multiple_exposure",
                        f"{rate:.2%} of units saw more than one variant, above the policy's "
                        f"{policy.multiple_exposure_max:.2%}.",
                        evidence={"rate": rate, "max": policy.multiple_exposure_max},
                    )
                )
            continue
        if check.severity is Severity.INFO:
            continue
        bad.append(
            run.add(
                Stage.TRUST,
                f"{check.check.value}_critical",
                check.message,
                metric=check.metric,
                variant=check.variant,
                evidence={
                    "check": check.check.value,
                    "severity": check.severity.value,
                    "value": check.value,
                },
            )
        )
    if run.primary is None:
        bad.append(
            run.add(
                Stage.TRUST,
                "no_primary_metric",
                "The experiment has no primary metric: there is nothing to decide on.",
            )
        )
    if not bad:
        run.add(Stage.TRUST, "trust_ok", "No critical health finding: the results can be trusted.")
        return None
    first = bad[0]
    return Outcome(
        Code.INVESTIGATE_INVALID_EXPERIMENT,
        f"Do not act on these results: {first.message}",
        reason=first,
        evidence={"findings": [r.code for r in bad]},
    )


# ------------------------------------------------------------------- maturity and primary


def _primary_or_segments(run: Run) -> Outcome:
    maturity = _maturity(run)
    if maturity is not None:
        return maturity
    deferred: list[Reason] = run.deferred
    if deferred:
        first = deferred[0]
        return Outcome(
            Code.HOLD_GUARDRAIL_RISK,
            f"Do not ship {first.variant}: {first.message}",
            variant=first.variant,
            reason=first,
            evidence={"guardrails": [r.metric for r in deferred]},
        )
    outcome = _primary(run)
    if outcome.code is Code.HOLD_INCONCLUSIVE and run.policy.segments.enabled:
        targeted = segment_stage(
            run.snapshot, run.metrics, run.primary, run.policy, run.alpha, run.add
        )
        if targeted is not None:
            return targeted
    return outcome


def _fading_primary(run: Run) -> HealthCheck | None:
    """The primary metric's novelty warning when it says the effect fades (later cohorts
    show the larger effect), else None."""
    if run.primary is None:
        return None
    for check in run.snapshot.checks(CheckName.NOVELTY):
        if (
            check.metric == run.primary.key
            and check.severity is not Severity.INFO
            # snapshots stored before the ``fading`` mark say it only in words
            and (check.fading or (check.fading is None and FADING in check.message))
        ):
            return check
    return None


def _maturity(run: Run) -> Outcome | None:
    policy, snapshot = run.policy.maturity, run.snapshot
    smallest = min((u.n for u in snapshot.units), default=0)
    days = len(snapshot.days)
    early = smallest < policy.min_units_per_variant or days < policy.min_days
    hurt = harmed(run, run.primary) if early and run.primary is not None else None
    if hurt is not None:
        row = run.overall.rows[hurt]
        run.add(
            Stage.MATURITY,
            "early_on_always_valid_bound",
            f"Only {days} day(s) and {smallest:,} units in the smallest variant, but "
            f"{row.metric} for {row.variant} is significantly worse by its always-valid interval: "
            "deciding early is safe.",
            metric=row.metric,
            variant=row.variant,
            evidence={
                "days": days,
                "smallest": smallest,
                "always_valid_p": finite(run.overall.av_p[hurt]),
            },
        )
        return None
    if smallest < policy.min_units_per_variant:
        reason = run.add(
            Stage.MATURITY,
            "too_few_units",
            f"The smallest variant has {smallest:,} units; the policy needs "
            f"{policy.min_units_per_variant:,} per variant.",
            evidence={"smallest": smallest, "min": policy.min_units_per_variant},
        )
        return Outcome(
            Code.KEEP_RUNNING,
            "Keep running: " + reason.message,
            reason=reason,
            evidence=reason.evidence,
        )
    if days < policy.min_days:
        reason = run.add(
            Stage.MATURITY,
            "too_few_days",
            f"{days} day(s) of data; the policy needs at least {policy.min_days}.",
            evidence={
                "days": days,
                "min_days": policy.min_days,
                "days_remaining": policy.min_days - days,
            },
        )
        return Outcome(
            Code.KEEP_RUNNING,
            "Keep running: " + reason.message,
            reason=reason,
            evidence=reason.evidence,
        )
    if policy.require_mature_windows:
        for check in snapshot.checks(CheckName.MATURITY):
            if check.severity is not Severity.INFO:
                reason = run.add(
                    Stage.MATURITY,
                    "immature_window",
                    check.message,
                    metric=check.metric,
                    evidence={"immature_share": check.value},
                )
                return Outcome(
                    Code.KEEP_RUNNING,
                    "Keep running: " + reason.message,
                    reason=reason,
                    evidence=reason.evidence,
                )
    fading = _fading_primary(run) if policy.hold_on_novelty and run.context.running else None
    if fading is not None:
        reason = run.add(
            Stage.MATURITY,
            "novelty_settling",
            fading.message,
            metric=fading.metric,
            variant=fading.variant,
            evidence={"trend_p": fading.value},
        )
        return Outcome(
            Code.KEEP_RUNNING,
            f"Keep running: the effect on {fading.metric} is still fading (novelty); the "
            "overall estimate overstates the lasting effect.",
            reason=reason,
            evidence=reason.evidence,
        )
    if snapshot.engine is Engine.BAYESIAN:
        return bayesian_gate(run.snapshot, run.overall, run.primary, run.policy, run.add)
    primary = run.primary
    if primary is None or not policy.require_planned_sample:
        return None
    idx = run.indices(primary.key)
    short = [
        i
        for i in idx
        if (need := run.overall.rows[i].n_required)
        and (run.overall.control_n[i] < need or run.overall.treatment_n[i] < need)
    ]
    if not short:
        if idx and any(run.overall.rows[i].n_required for i in idx):
            run.add(
                Stage.MATURITY,
                "planned_sample_reached",
                f"The planned sample for {primary.name} is reached.",
            )
        else:
            run.add(
                Stage.MATURITY,
                "mature",
                f"{days} days and {smallest:,} units in the smallest variant: mature.",
                evidence={"days": days, "smallest": smallest},
            )
        return None
    data = run.overall
    needed = max(run.overall.rows[i].n_required or 0.0 for i in short)
    remaining = max((run.overall.rows[i].days_remaining or 0) for i in short)
    have = float(np.nanmin(np.minimum(data.control_n[short], data.treatment_n[short])))
    bonferroni = max(len(idx), 1)
    decisive = [
        i for i in idx if np.isfinite(data.av_p[i]) and data.av_p[i] * bonferroni < run.alpha
    ]
    evidence = {
        "units": have,
        "required": needed,
        "days_remaining": remaining,
        "always_valid_p": [finite(data.av_p[i]) for i in idx],
    }
    if decisive and run.policy.sequential.early_on_always_valid_bounds:
        run.add(
            Stage.MATURITY,
            "early_on_always_valid_bound",
            f"Short of the planned sample ({have:,.0f} of {needed:,.0f} units per variant) but the "
            "always-valid interval already excludes no effect: deciding early is safe.",
            metric=primary.key,
            evidence=evidence,
        )
        return None
    ended = run.context.status in ENDED_STATUSES
    more = (
        f"it stopped short (about {remaining:,} more day(s) had it kept running)"
        if ended
        else f"about {remaining:,} more day(s) at the current rate"
    )
    reason = run.add(
        Stage.MATURITY,
        "underpowered",
        f"{have:,.0f} of the {needed:,.0f} units per variant the plan needs for {primary.name}; "
        f"{more}.",
        metric=primary.key,
        evidence=evidence | {"ended": ended},
    )
    summary = (
        f"Pending: under-powered, stopped at {have:,.0f} of the {needed:,.0f} units per variant "
        f"the plan needs (about {remaining:,} more day(s) had it kept running)."
        if ended
        else f"Pending: under-powered, about {remaining:,} more day(s) to the planned sample."
    )
    return Outcome(
        Code.PENDING_UNDERPOWERED,
        summary,
        reason=reason,
        evidence=evidence | {"ended": ended},
    )


def _primary(run: Run) -> Outcome:
    primary, data, policy = run.primary, run.overall, run.policy
    assert primary is not None  # the trust gate stops experiments without one
    early = any(r.code == "early_on_always_valid_bound" for r in run.reasons)
    winners: list[tuple[float, int]] = []
    losers: list[int] = []
    per_arm: list[Reason] = []
    for i in run.indices(primary.key):
        row = data.rows[i]
        kind, threshold = min_lift(policy, primary.key, row)
        arms = max(len(run.indices(primary.key)), 1)
        # early: the always-valid p, Bonferroni across the arms (capped at 1, as any p-value)
        p = min(1.0, data.av_p[i] * arms) if early else data.p_adjusted[i]
        rel, absolute = data.rel_effect[i], data.abs_effect[i]
        good_rel, good_abs = primary.sign * rel, primary.sign * absolute
        lift = good_rel if kind == "relative" else good_abs
        fields = {"metric": primary.key, "variant": row.variant}
        evidence: dict[str, Any] = {
            "rel_effect": finite(rel),
            "abs_effect": finite(absolute),
            "rel_ci": [finite(data.rel_low[i]), finite(data.rel_high[i])],
            "p_value": finite(data.p_value[i]),
            "p_value_adjusted": finite(p),
            # which p that is: early, the always-valid p × the arms (not the table's Holm p)
            "p_kind": "always_valid_bonferroni" if early else "fixed_horizon_adjusted",
            "alpha": run.alpha,
            "min_lift": {"kind": kind, "value": threshold},
        }
        significant = bool(np.isfinite(p) and p < run.alpha)
        better, worse = significant and good_rel > 0, significant and good_rel < 0
        ci = _interval_text(data, i, p, early=early)
        if run.snapshot.engine is Engine.BAYESIAN:  # chance to beat control, by direction
            chance, need = row.chance_to_win, policy.bayesian.chance_to_win
            better = chance is not None and chance >= need
            worse = chance is not None and chance <= 1.0 - need
            evidence["chance_to_win"] = chance
            evidence["expected_loss"] = row.risk_treatment
            ci = f"chance to win {_p(chance if chance is not None else math.nan)}"
        head = f"{primary.name} for {row.variant}: {rel:+.2%} vs {run.control} ({ci})"
        if better and lift >= threshold:
            winners.append((float(good_rel), i))
            code, text = "primary_significant_win", f"{head}, at least the minimum lift."
        elif better:
            code = "below_minimum_lift"
            text = (
                f"{head}: significant but below the minimum lift ({_lift_text(kind, threshold)})."
            )
        elif worse:
            losers.append(i)
            code, text = "primary_significant_loss", f"{head}: significantly worse."
        elif not np.isfinite(rel):
            code = "primary_no_estimate"
            text = f"{primary.name} for {row.variant}: no estimate yet ({row.reason or 'no data'})."
        else:
            code = "primary_not_significant"
            text = f"{head}: not significant; a point estimate that is not significant never ships."
        per_arm.append(run.add(Stage.PRIMARY, code, text, evidence=evidence, **fields))
    if winners:
        winners.sort(reverse=True)
        best = winners[0][1]
        row = data.rows[best]
        reason = next(r for r in per_arm if r.variant == row.variant)
        for _, other in winners[1:]:
            run.add(
                Stage.PRIMARY,
                "arm_also_wins",
                f"{data.rows[other].variant} also wins ({data.rel_effect[other]:+.2%}) but by "
                f"less than {row.variant} ({data.rel_effect[best]:+.2%}).",
                metric=primary.key,
                variant=data.rows[other].variant,
                evidence={"rel_effect": finite(data.rel_effect[other])},
            )
        return Outcome(
            Code.SHIP_GLOBAL,
            f"Ship {row.variant}: {primary.name} {data.rel_effect[best]:+.1%} vs {run.control}, "
            "significant and at least the minimum lift.",
            variant=row.variant,
            reason=reason,
            evidence=reason.evidence
            | {"others": [data.rows[i].variant for i in run.indices(primary.key) if i != best]},
        )
    if losers and policy.primary.kill_on_significant_harm:
        worst = min(losers, key=lambda i: primary.sign * data.rel_effect[i])
        row = data.rows[worst]
        reason = next(r for r in per_arm if r.variant == row.variant)
        code = (
            Code.ROLLBACK
            if run.context.running and policy.guardrails.rollback_when_running
            else Code.KILL
        )
        verb = "Roll back" if code is Code.ROLLBACK else "Kill"
        return Outcome(
            code,
            f"{verb} {row.variant}: {reason.message}",
            variant=row.variant,
            reason=reason,
            evidence=reason.evidence,
        )
    reason = (
        per_arm[0]
        if per_arm
        else run.add(Stage.PRIMARY, "primary_no_estimate", f"No result for {primary.name} yet.")
    )
    return Outcome(
        Code.HOLD_INCONCLUSIVE,
        f"Hold: {primary.name} shows no significant, practically large effect.",
        reason=reason,
        evidence=reason.evidence,
    )


def _interval_text(data: Any, i: int, p: float, *, early: bool) -> str:
    """The interval and p-value that the verdict rests on, named for what they are: the
    always-valid interval and p when deciding early; otherwise the fixed-horizon interval with
    the raw p beside the family-adjusted one when they differ (a 95% interval that excludes 0
    beside an adjusted p above alpha is the correction at work, not a contradiction)."""
    if early:
        return (
            f"always-valid CI {data.av_rel_low[i]:+.2%} to {data.av_rel_high[i]:+.2%}, "
            f"always-valid p = {_p(p)} across the arms"
        )
    text = f"CI {data.rel_low[i]:+.2%} to {data.rel_high[i]:+.2%}, "
    raw = float(data.p_value[i])
    if np.isfinite(raw) and np.isfinite(p) and _p(raw) != _p(p):
        return text + f"p = {_p(raw)}, adjusted p = {_p(p)}"
    return text + f"adjusted p = {_p(p)}"


def _p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.3g}"


def _lift_text(kind: str, threshold: float) -> str:
    return f"{threshold:.2%}" if kind == "relative" else f"{threshold:g} absolute"

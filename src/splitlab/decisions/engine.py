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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from splitlab.analysis.snapshot import CheckName, Severity, Snapshot
from splitlab.decisions.evidence import Comparisons, MetricInfo, comparisons, finite, metric_infos
from splitlab.decisions.policy import Policy
from splitlab.decisions.recommendation import BusinessValue, Code, Reason, Recommendation, Stage
from splitlab.decisions.stages import (
    REASONS,
    Outcome,
    bayesian_gate,
    business_value,
    segment_stage,
)
from splitlab.domain import Engine

__all__ = ["LABELS", "REASONS", "DecisionContext", "label_for", "recommend"]

LIVE_STATUSES = frozenset({"running", "rolling_out"})

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


@dataclass(frozen=True)
class DecisionContext:
    """What the engine knows besides the snapshot."""

    status: str | None = None
    """The experiment's lifecycle status (``running``, ``stopped``, …)."""
    now: datetime | None = None
    """When the recommendation is made."""
    start_at: datetime | None = None
    """When the experiment started."""
    experiment_type: str | None = None
    """``feature``, ``model_comparison``, ``infrastructure``, …"""
    team: str | None = None
    """The owning team."""

    @property
    def running(self) -> bool:
        """Whether units are still being assigned (running or rolling out)."""
        return self.status in LIVE_STATUSES


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


DECIDING_GUARDRAIL_CODES = frozenset(
    {
        "guardrail_breach",
        "guardrail_beyond_margin",
        "guardrail_not_non_inferior",
        "ratio_rule_breach",
    }
)


class _Run:
    """One evaluation: the snapshot's metrics and arrays, and the reasons so far."""

    def __init__(self, snapshot: Snapshot, policy: Policy, context: DecisionContext) -> None:
        self.snapshot, self.policy, self.context = snapshot, policy, context
        self.metrics = metric_infos(snapshot)
        self.alpha = float(snapshot.settings.get("alpha", 0.05))
        self.reasons: list[Reason] = []
        overall = [r for r in snapshot.results if r.segment is None]
        self.overall = comparisons(
            overall, engine=snapshot.engine, alpha=self.alpha, tuning=policy.sequential.tuning
        )
        self.primary = next((m for m in self.metrics.values() if m.role == "primary"), None)

    def add(self, stage: Stage, code: str, message: str, **fields: Any) -> Reason:
        reason = Reason(stage=stage, code=code, message=message, **fields)
        self.reasons.append(reason)
        return reason

    def indices(self, metric: str) -> list[int]:
        return [i for i, r in enumerate(self.overall.rows) if r.metric == metric]


def recommend(snapshot: Snapshot, *, policy: Policy, context: DecisionContext) -> Recommendation:
    """The recommendation for ``snapshot`` under ``policy`` (pure; see the module docstring
    for the stages and :data:`REASONS` for every reason code)."""
    run = _Run(snapshot, policy, context)
    outcome = _trust(run) or _guardrails(run) or _primary_or_segments(run)
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


def _trust(run: _Run) -> Outcome | None:
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


# ----------------------------------------------------------------------------- guardrails


def _guardrails(run: _Run) -> Outcome | None:
    """Breaches decide now; unproven non-inferiority of a running experiment waits for
    maturity (stored in ``run.deferred``)."""
    policy, data, running = run.policy.guardrails, run.overall, run.context.running
    rollback: Reason | None = None
    holds: list[Reason] = []
    deferred: list[Reason] = []
    guardrails = [m for m in run.metrics.values() if m.role == "guardrail"]
    for metric in guardrails:
        for i in run.indices(metric.key):
            reason, stop, hold_now = _guardrail_finding(run, metric, i)
            if stop and running and policy.rollback_when_running and rollback is None:
                rollback = reason
            elif reason.code in DECIDING_GUARDRAIL_CODES:
                (holds if (hold_now or not running) else deferred).append(reason)
    for rule in policy.rules:
        for i in run.indices(rule.metric):
            info = run.metrics[rule.metric]
            row = data.rows[i]
            cm, tm = row.control_mean, row.treatment_mean
            if cm is None or tm is None or cm == 0:
                continue
            ratio = tm / cm if not info.higher_is_better else cm / tm if tm else float("inf")
            if ratio <= rule.max_ratio:
                run.add(
                    Stage.GUARDRAILS,
                    "ratio_rule_ok",
                    f"{info.name} for {row.variant}: ratio {ratio:.3f} within {rule.max_ratio:g}.",
                    metric=info.key,
                    variant=row.variant,
                    evidence={"ratio": ratio, "max_ratio": rule.max_ratio},
                )
                continue
            bound = (
                rule.max_ratio - 1.0 if not info.higher_is_better else 1.0 - 1.0 / rule.max_ratio
            )
            harm_low = _harm_low(info, data, i)
            confirmed = bool(np.isfinite(harm_low) and harm_low > bound)
            reason = run.add(
                Stage.GUARDRAILS,
                "ratio_rule_breach",
                f"{info.name} for {row.variant} is {tm:,.4g} against {cm:,.4g} for control: "
                f"{'treatment/control' if not info.higher_is_better else 'control/treatment'} = "
                f"{ratio:.3f} > {rule.max_ratio:g}.",
                metric=info.key,
                variant=row.variant,
                evidence={
                    "ratio": ratio,
                    "max_ratio": rule.max_ratio,
                    "control_mean": cm,
                    "treatment_mean": tm,
                    "always_valid_confirmed": confirmed,
                },
            )
            if confirmed and running and policy.rollback_when_running and rollback is None:
                rollback = reason
            else:
                holds.append(reason)
    if running and policy.rollback_when_running and rollback is None and run.primary is not None:
        rollback = _primary_harm_running(run, run.primary)
    run.deferred = deferred  # type: ignore[attr-defined]
    if rollback is not None:
        return Outcome(
            Code.ROLLBACK,
            f"Roll back {rollback.variant}: {rollback.message}",
            variant=rollback.variant,
            reason=rollback,
            evidence=rollback.evidence,
        )
    if holds:
        first = holds[0]
        return Outcome(
            Code.HOLD_GUARDRAIL_RISK,
            f"Do not ship {first.variant}: {first.message}",
            variant=first.variant,
            reason=first,
            evidence={"guardrails": [r.metric for r in holds]},
        )
    if (guardrails or policy.rules) and not deferred:
        run.add(Stage.GUARDRAILS, "guardrails_ok", "Every guardrail is within its margin.")
    return None


def _harm_low(info: MetricInfo, data: Comparisons, i: int) -> float:
    """The smallest relative harm the always-valid interval allows (> 0: surely worse)."""
    if info.higher_is_better:
        return float(-data.av_rel_high[i])
    return float(data.av_rel_low[i])


def _guardrail_finding(run: _Run, metric: MetricInfo, i: int) -> tuple[Reason, bool, bool]:
    """(reason, confirmed by the always-valid interval, hold even while running)."""
    data, row = run.overall, run.overall.rows[i]
    margin = metric.margin if metric.margin is not None else 0.0
    rel, low, high = data.rel_effect[i], data.rel_low[i], data.rel_high[i]
    fields = {"metric": metric.key, "variant": row.variant}
    if not np.isfinite(rel) or not np.isfinite(low) or not np.isfinite(high):
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_no_estimate",
            f"{metric.name} for {row.variant} has no estimate yet ({row.reason or 'no data'}).",
            evidence={"reason": row.reason},
            **fields,
        )
        return reason, False, False
    harm = -metric.sign * rel
    worst = -metric.sign * (low if metric.higher_is_better else high)
    best = -metric.sign * (high if metric.higher_is_better else low)
    av_best = _harm_low(metric, data, i)
    evidence = {
        "rel_effect": float(rel),
        "ci": [float(low), float(high)],
        "always_valid_ci": [finite(data.av_rel_low[i]), finite(data.av_rel_high[i])],
        "margin": metric.margin,
        "harm": float(harm),
    }
    confirmed = bool(np.isfinite(av_best) and av_best > margin)
    if best > margin:
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_breach",
            f"{metric.name} for {row.variant} is {rel:+.1%} vs control (CI {low:+.1%} to "
            f"{high:+.1%}), significantly beyond its margin of {margin:.1%}"
            + (" (confirmed by the always-valid interval)." if confirmed else "."),
            evidence=evidence | {"always_valid_confirmed": confirmed},
            **fields,
        )
        return reason, confirmed, True
    if harm > margin:
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_beyond_margin",
            f"{metric.name} for {row.variant} is {rel:+.1%} vs control, beyond its margin of "
            f"{margin:.1%} (not yet significant).",
            evidence=evidence,
            **fields,
        )
        return reason, False, False
    if run.policy.guardrails.non_inferiority and worst > margin:
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_not_non_inferior",
            f"{metric.name} for {row.variant} could be as bad as {-metric.sign * worst:+.1%} "
            f"(CI {low:+.1%} to {high:+.1%}): non-inferiority within {margin:.1%} is not shown.",
            evidence=evidence,
            **fields,
        )
        return reason, False, False
    reason = run.add(
        Stage.GUARDRAILS,
        "guardrail_ok",
        f"{metric.name} for {row.variant} is {rel:+.1%} (CI {low:+.1%} to {high:+.1%}), within "
        f"its margin of {margin:.1%}.",
        evidence=evidence,
        **fields,
    )
    return reason, False, False


def _harmed(run: _Run, primary: MetricInfo) -> int | None:
    """The first treatment whose primary metric is significantly worse by its always-valid
    interval (valid at any look, so it may decide before the experiment is mature)."""
    for i in run.indices(primary.key):
        harm_low = _harm_low(primary, run.overall, i)
        if np.isfinite(harm_low) and harm_low > 0:
            return i
    return None


def _primary_harm_running(run: _Run, primary: MetricInfo) -> Reason | None:
    data = run.overall
    i = _harmed(run, primary)
    if i is not None:
        row = data.rows[i]
        return run.add(
            Stage.GUARDRAILS,
            "primary_harm_running",
            f"The primary metric {primary.name} for {row.variant} is "
            f"{data.rel_effect[i]:+.1%} vs control, significantly worse by its always-valid "
            f"interval ({data.av_rel_low[i]:+.1%} to {data.av_rel_high[i]:+.1%}) while the "
            "experiment runs.",
            metric=primary.key,
            variant=row.variant,
            evidence={
                "rel_effect": finite(data.rel_effect[i]),
                "always_valid_ci": [finite(data.av_rel_low[i]), finite(data.av_rel_high[i])],
                "always_valid_p": finite(data.av_p[i]),
            },
        )
    return None


# ------------------------------------------------------------------- maturity and primary


def _primary_or_segments(run: _Run) -> Outcome:
    maturity = _maturity(run)
    if maturity is not None:
        return maturity
    deferred: list[Reason] = getattr(run, "deferred", [])
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


def _maturity(run: _Run) -> Outcome | None:
    policy, snapshot = run.policy.maturity, run.snapshot
    smallest = min((u.n for u in snapshot.units), default=0)
    days = len(snapshot.days)
    early = smallest < policy.min_units_per_variant or days < policy.min_days
    harmed = _harmed(run, run.primary) if early and run.primary is not None else None
    if harmed is not None:
        row = run.overall.rows[harmed]
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
                "always_valid_p": finite(run.overall.av_p[harmed]),
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
    if decisive and run.policy.sequential.stop_early_on_bounds_only:
        run.add(
            Stage.MATURITY,
            "early_on_always_valid_bound",
            f"Short of the planned sample ({have:,.0f} of {needed:,.0f} units per variant) but the "
            "always-valid interval already excludes no effect: deciding early is safe.",
            metric=primary.key,
            evidence=evidence,
        )
        return None
    reason = run.add(
        Stage.MATURITY,
        "underpowered",
        f"{have:,.0f} of the {needed:,.0f} units per variant the plan needs for {primary.name}; "
        f"about {remaining} more day(s) at the current rate.",
        metric=primary.key,
        evidence=evidence,
    )
    return Outcome(
        Code.PENDING_UNDERPOWERED,
        f"Pending: under-powered, about {remaining} more day(s) to the planned sample.",
        reason=reason,
        evidence=evidence,
    )


def _primary(run: _Run) -> Outcome:
    primary, data, policy = run.primary, run.overall, run.policy
    assert primary is not None  # the trust gate stops experiments without one
    kind, threshold = policy.primary.min_lift.threshold(primary.key)
    early = any(r.code == "early_on_always_valid_bound" for r in run.reasons)
    winners: list[tuple[float, int]] = []
    losers: list[int] = []
    per_arm: list[Reason] = []
    for i in run.indices(primary.key):
        row = data.rows[i]
        p = data.av_p[i] * max(len(run.indices(primary.key)), 1) if early else data.p_adjusted[i]
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
            "alpha": run.alpha,
            "min_lift": {"kind": kind, "value": threshold},
        }
        significant = bool(np.isfinite(p) and p < run.alpha)
        if run.snapshot.engine is Engine.BAYESIAN:
            chance = row.chance_to_win
            need = policy.bayesian.chance_to_win
            significant = chance is not None and (chance >= need or chance <= 1.0 - need)
            evidence["chance_to_win"] = chance
            evidence["expected_loss"] = row.risk_treatment
        ci = f"CI {data.rel_low[i]:+.2%} to {data.rel_high[i]:+.2%}, adjusted p = {_p(p)}"
        head = f"{primary.name} for {row.variant}: {rel:+.2%} vs control ({ci})"
        if significant and good_rel > 0 and lift >= threshold:
            winners.append((float(good_rel), i))
            code, text = "primary_significant_win", f"{head}, at least the minimum lift."
        elif significant and good_rel > 0:
            code = "below_minimum_lift"
            text = (
                f"{head}: significant but below the minimum lift ({_lift_text(kind, threshold)})."
            )
        elif significant and good_rel < 0:
            losers.append(i)
            code, text = "primary_significant_loss", f"{head}: significantly worse."
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
            f"Ship {row.variant}: {primary.name} {data.rel_effect[best]:+.1%} vs control, "
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


def _p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.3g}"


def _lift_text(kind: str, threshold: float) -> str:
    return f"{threshold:.2%}" if kind == "relative" else f"{threshold:g} absolute"

"""The later stages of the decision engine (Bayesian gate, segments, business value) and the
reason codes every stage uses (:data:`REASONS`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from splitlab import stats
from splitlab.analysis.snapshot import CheckName, ResultRow, Severity, Snapshot
from splitlab.decisions.evidence import (
    Comparisons,
    MetricInfo,
    comparisons,
    finite,
    metric_infos,
    stated,
    z_quantile,
)
from splitlab.decisions.policy import Policy
from splitlab.decisions.recommendation import BusinessValue, Code, Reason, Stage

REASONS: dict[str, str] = {
    "novelty_settling": "While running, the primary metric's effect is still fading "
    "(novelty): keep running until it settles.",
    # trust
    "trust_ok": "No critical health finding: the results can be trusted.",
    "srm_critical": "Sample ratio mismatch: the split does not match the configured weights.",
    "multiple_exposure": "More units saw several variants than the policy tolerates.",
    "pre_period_imbalance_critical": "The variants differed before exposure (CUPED pre-period).",
    "no_data_critical": "A metric has no matching events: the data is missing.",
    "no_primary_metric": "The experiment has no primary metric to decide on.",
    # any other check the policy lists as critical: "<check>_critical"
    # guardrails
    "guardrails_ok": "Every guardrail is within its margin.",
    "guardrail_ok": "This guardrail is within its margin.",
    "guardrail_breach": "A guardrail is significantly worse than its margin allows.",
    "guardrail_beyond_margin": "A guardrail's estimate is beyond its margin (not yet significant).",
    "guardrail_not_non_inferior": "The guardrail's CI reaches past its margin: non-inferiority "
    "is not shown.",
    "guardrail_no_estimate": "A guardrail has no estimate yet.",
    "ratio_rule_ok": "A ratio rule's metric is within its ratio.",
    "ratio_rule_breach": "treatment mean > max_ratio × control mean (or the reverse for "
    "higher-is-better metrics).",
    "primary_harm_running": "While running, the primary metric is significantly worse by its "
    "always-valid interval.",
    # maturity
    "too_few_units": "A variant has fewer units than the policy's minimum.",
    "too_few_days": "Fewer days of data than the policy's minimum.",
    "immature_window": "Most units are still inside a metric's window.",
    "underpowered": "Short of the plan's required sample; evidence names the projected days.",
    "early_on_always_valid_bound": "Short of the planned sample, but the always-valid bound is "
    "decisive.",
    "planned_sample_reached": "The plan's required sample is reached.",
    "mature": "Enough units and days; windows closed.",
    "bayesian_before_horizon": "A Bayesian plan read before its horizon, and the early rule "
    "(minimum sample, expected loss) is not met.",
    "bayesian_early_decision": "Before the horizon, but the minimum sample is reached and the "
    "expected loss is below the threshold.",
    "bayesian_at_horizon": "A Bayesian plan at its horizon.",
    # primary
    "primary_significant_win": "The primary metric won, significantly and by the minimum lift.",
    "below_minimum_lift": "Significant, but below the minimum practical lift.",
    "primary_significant_loss": "The primary metric is significantly worse.",
    "primary_not_significant": "Not significant: a point estimate that is not significant never "
    "ships.",
    "primary_no_estimate": "No result for the primary metric yet.",
    "arm_also_wins": "A/B/n: another arm also wins, by less than the chosen one.",
    # segments
    "segment_win": "A pre-registered segment value wins after the correction across segments.",
    "segment_harm": "A segment value is significantly worse after the correction.",
    "segment_too_small": "A segment value has fewer units than the policy's minimum.",
    "no_segment_win": "No segment value wins after the correction.",
    # value
    "expected_value": "Expected net value per day of shipping a treatment, with its CI.",
}
"""Every reason code the engine emits, with its meaning."""

Add = Callable[..., Reason]
LIVE_STATUSES = frozenset({"running", "rolling_out"})
ENDED_STATUSES = frozenset({"stopped", "readout", "shipped", "killed", "rolled_back"})
"""Statuses in which no more units arrive: "more days at the current rate" no longer applies."""
NOT_STARTED_STATUSES = frozenset({"draft", "review", "scheduled"})
"""Statuses before the first unit: there is nothing to decide on yet."""


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


class Run:
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
        self.deferred: list[Reason] = []
        """Guardrail holds of a running experiment that wait for maturity."""
        self.control = snapshot.units[0].variant if snapshot.units else "control"
        """The control variant's key (units come control first), named in the messages: a
        canary's control is ``stable``, not "control"."""

    def add(self, stage: Stage, code: str, message: str, **fields: Any) -> Reason:
        """Record one reason (``metric``, ``variant``, ``segment``, ``evidence`` as fields)."""
        reason = Reason(stage=stage, code=code, message=message, **fields)
        self.reasons.append(reason)
        return reason

    def indices(self, metric: str) -> list[int]:
        """Positions of ``metric``'s overall comparisons (one per treatment)."""
        return [i for i, r in enumerate(self.overall.rows) if r.metric == metric]


@dataclass
class Outcome:
    """A stage's decision."""

    code: Code
    summary: str
    variant: str | None = None
    segments: list[dict[str, str]] = field(default_factory=list)
    reason: Reason | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def min_lift(policy: Policy, metric: str, row: ResultRow | None) -> tuple[str, float]:
    """The minimum practical lift of ``metric``: the policy's own for the metric, else the one
    the experiment's plan states (on the overall row), else the policy's default."""
    lifts = policy.primary.min_lift
    if metric in lifts.metrics or row is None or stated(row, "min_lift") is None:
        return lifts.threshold(metric)
    value, scale = stated(row, "min_lift")  # type: ignore[misc]
    return ("absolute" if scale == "absolute" else "relative"), value


def bayesian_gate(
    snapshot: Snapshot,
    data: Comparisons,
    primary: MetricInfo | None,
    policy: Policy,
    add: Add,
) -> Outcome | None:
    """Bayesian plans decide at their horizon, or early once every arm has the minimum sample
    and the best arm's expected loss is below the threshold; otherwise KEEP_RUNNING."""
    checks = snapshot.checks(CheckName.BAYESIAN_HORIZON)
    at_horizon = (
        bool(checks) and checks[0].severity is Severity.INFO and checks[0].value is not None
    )
    if at_horizon:
        add(Stage.MATURITY, "bayesian_at_horizon", checks[0].message)
        return None
    rule = policy.bayesian
    smallest = min((u.n for u in snapshot.units), default=0)
    losses = [
        r.risk_treatment
        for r in data.rows
        if primary is not None and r.metric == primary.key and r.risk_treatment is not None
    ]
    best_loss = min(losses, default=float("inf"))
    evidence = {
        "smallest": smallest,
        "min_units": rule.min_units_per_variant,
        "expected_loss": finite(best_loss),
        "max_expected_loss": rule.max_expected_loss,
    }
    if smallest >= rule.min_units_per_variant and best_loss <= rule.max_expected_loss:
        add(
            Stage.MATURITY,
            "bayesian_early_decision",
            f"Before the horizon, but {smallest:,} units per variant (≥ "
            f"{rule.min_units_per_variant:,}) and an expected loss of {best_loss:.3g} (≤ "
            f"{rule.max_expected_loss:g}): deciding early is allowed.",
            evidence=evidence,
        )
        return None
    message = (
        checks[0].message
        if checks
        else "The Bayesian plan has no horizon and the early rule is not met."
    )
    reason = add(Stage.MATURITY, "bayesian_before_horizon", message, evidence=evidence)
    return Outcome(
        Code.KEEP_RUNNING,
        "Keep running: a Bayesian plan is read before its horizon.",
        reason=reason,
        evidence=evidence,
    )


def segment_stage(
    snapshot: Snapshot,
    metrics: dict[str, MetricInfo],
    primary: MetricInfo | None,
    policy: Policy,
    alpha: float,
    add: Add,
) -> Outcome | None:
    """Targeted ship: the primary metric's pre-registered segment values, corrected across
    all of them (Holm or Bonferroni); wins (significant, good direction, at least the minimum
    lift, not the catch-all ``other``) with no significant harm elsewhere."""
    del metrics
    if primary is None:
        return None
    rows = [r for r in snapshot.results if r.segment is not None and r.metric == primary.key]
    if not rows:
        return None
    rule = policy.segments
    tested = [
        r
        for r in rows
        if (r.control_n or 0) >= rule.min_units
        and (r.treatment_n or 0) >= rule.min_units
        and r.p_value is not None
    ]
    for r in rows:
        if r not in tested and r.p_value is not None:
            add(
                Stage.SEGMENTS,
                "segment_too_small",
                f"{_seg(r)} for {r.variant} has {int(min(r.control_n or 0, r.treatment_n or 0)):,} "
                f"units in its smaller arm, below {rule.min_units:,}: not tested.",
                metric=primary.key,
                variant=r.variant,
                segment=_segdict(r),
            )
    if not tested:
        return None
    data = comparisons(tested, engine=snapshot.engine, alpha=alpha, tuning=policy.sequential.tuning)
    adjust = stats.holm if rule.correction == "holm" else stats.bonferroni
    adjusted = np.asarray(adjust(data.p_value), dtype=np.float64)
    overall = {r.variant: r for r in snapshot.overall() if r.metric == primary.key}
    wins: list[int] = []
    harms: list[int] = []
    found: dict[int, Reason] = {}
    for i, row in enumerate(tested):
        kind, threshold = min_lift(policy, primary.key, overall.get(row.variant))
        good = primary.sign * data.rel_effect[i]
        lift = good if kind == "relative" else primary.sign * data.abs_effect[i]
        significant = bool(np.isfinite(adjusted[i]) and adjusted[i] < alpha)
        evidence = {
            "rel_effect": finite(data.rel_effect[i]),
            "rel_ci": [finite(data.rel_low[i]), finite(data.rel_high[i])],
            "p_value": finite(data.p_value[i]),
            "p_value_adjusted": finite(adjusted[i]),
            "correction": rule.correction,
            "tested": len(tested),
            "control_n": finite(data.control_n[i]),
            "treatment_n": finite(data.treatment_n[i]),
        }
        fields = {"metric": primary.key, "variant": row.variant, "segment": _segdict(row)}
        if significant and good < 0:
            harms.append(i)
            add(
                Stage.SEGMENTS,
                "segment_harm",
                f"{_seg(row)}: {primary.name} for {row.variant} is {data.rel_effect[i]:+.1%}, "
                f"significantly worse ({rule.correction} p = {adjusted[i]:.3g}).",
                evidence=evidence,
                **fields,
            )
        elif significant and good > 0 and lift >= threshold and row.segment.value != "other":  # type: ignore[union-attr]
            wins.append(i)
            found[i] = add(
                Stage.SEGMENTS,
                "segment_win",
                f"{_seg(row)}: {primary.name} for {row.variant} is {data.rel_effect[i]:+.1%} "
                f"({rule.correction} p = {adjusted[i]:.3g} across {len(tested)} segment "
                "values).",
                evidence=evidence,
                **fields,
            )
    if not wins:
        add(
            Stage.SEGMENTS,
            "no_segment_win",
            f"No pre-registered segment value wins after the {rule.correction} correction "
            f"across {len(tested)}.",
            metric=primary.key,
            evidence={"tested": len(tested), "correction": rule.correction},
        )
        return None
    if harms:
        return None
    best = max(wins, key=lambda i: primary.sign * data.rel_effect[i])
    variant = tested[best].variant
    chosen = [i for i in wins if tested[i].variant == variant]
    segments = [_segdict(tested[i]) for i in chosen]
    names = ", ".join(_seg(tested[i]) for i in chosen)
    reason = found[best]
    return Outcome(
        Code.SHIP_TARGETED_SEGMENTS,
        f"Ship {variant} to {names} only: {primary.name} wins there, with no significant harm "
        "elsewhere.",
        variant=variant,
        segments=segments,
        reason=reason,
        evidence={"segments": segments, "correction": rule.correction, "tested": len(tested)},
    )


def _segdict(row: Any) -> dict[str, str]:
    return {"name": row.segment.name, "value": row.segment.value}


def _seg(row: Any) -> str:
    return f"{row.segment.name}={row.segment.value}"


def business_value(
    snapshot: Snapshot,
    data: Comparisons,
    metrics: dict[str, MetricInfo],
    policy: Policy,
) -> list[BusinessValue]:
    """Expected net value per day of shipping each treatment: units per day × (Σ value per
    unit of metric × absolute effect − (cost of the treatment − cost of control)), with a
    normal CI from the effects' standard errors (metrics taken as independent)."""
    rule = policy.value
    if not rule.metrics and not rule.cost_per_unit:
        return []
    units = sum(u.n for u in snapshot.units)
    days = max(len(snapshot.days), 1)
    per_day_units = rule.units_per_day if rule.units_per_day is not None else units / days
    control = snapshot.units[0].variant if snapshot.units else ""
    alpha = float(snapshot.settings.get("alpha", 0.05))
    z = z_quantile(alpha)
    out = []
    for variant in [u.variant for u in snapshot.units[1:]]:
        total, variance = 0.0, 0.0
        detail: dict[str, Any] = {}
        usable = True
        for key, value in rule.metrics.items():
            idx = [i for i, r in enumerate(data.rows) if r.metric == key and r.variant == variant]
            if key not in metrics or not idx:
                continue
            i = idx[0]
            effect, se = data.abs_effect[i], data.se[i]
            if not (np.isfinite(effect) and np.isfinite(se)):
                usable = False
                continue
            total += value * float(effect)
            variance += (value * float(se)) ** 2
            detail[key] = {"value_per_unit": value, "abs_effect": float(effect)}
        cost = rule.cost_per_unit.get(variant, 0.0) - rule.cost_per_unit.get(control, 0.0)
        total -= cost
        detail["cost_per_unit"] = cost
        if not usable and not detail:
            continue
        half = z * variance**0.5
        out.append(
            BusinessValue(
                variant=variant,
                per_day=per_day_units * total,
                ci_low=per_day_units * (total - half),
                ci_high=per_day_units * (total + half),
                currency=rule.currency,
                detail=detail | {"units_per_day": per_day_units},
            )
        )
    return out

"""Stage 2 of the decision engine: guardrails (non-inferiority within each guardrail's margin,
ratio rules) and, while the experiment runs, stops confirmed by always-valid intervals."""

from __future__ import annotations

import numpy as np

from splitlab.decisions.evidence import Comparisons, MetricInfo, finite, stated
from splitlab.decisions.recommendation import Code, Reason, Stage
from splitlab.decisions.stages import Outcome, Run

DECIDING_GUARDRAIL_CODES = frozenset(
    {
        "guardrail_breach",
        "guardrail_beyond_margin",
        "guardrail_not_non_inferior",
        "ratio_rule_breach",
    }
)


def guardrail_stage(run: Run) -> Outcome | None:
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
    run.deferred = deferred
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
        _all_ok(run)
    return None


def _all_ok(run: Run) -> None:
    """``guardrails_ok``, saying how many guardrails have no estimate yet: "every guardrail
    is within its margin" beside "no estimate yet" would contradict itself."""
    judged = [r for r in run.reasons if r.stage is Stage.GUARDRAILS]
    unknown = [r for r in judged if r.code == "guardrail_no_estimate"]
    if not unknown:
        run.add(Stage.GUARDRAILS, "guardrails_ok", "Every guardrail is within its margin.")
    elif len(unknown) < len(judged):
        run.add(
            Stage.GUARDRAILS,
            "guardrails_ok",
            f"Every guardrail with an estimate is within its margin; {len(unknown)} "
            "comparison(s) have no estimate yet.",
            evidence={"no_estimate": len(unknown)},
        )


def _harm_low(info: MetricInfo, data: Comparisons, i: int) -> float:
    """The smallest relative harm the always-valid interval allows (> 0: surely worse)."""
    if info.higher_is_better:
        return float(-data.av_rel_high[i])
    return float(data.av_rel_low[i])


def _guardrail_finding(run: Run, metric: MetricInfo, i: int) -> tuple[Reason, bool, bool]:
    """(reason, confirmed by the always-valid interval, hold even while running).

    The margin is the one the analysis states on the row (relative or absolute), else the
    plan's (relative); without one, any significant harm breaches."""
    data, row = run.overall, run.overall.rows[i]
    given = stated(row, "margin")
    margin, scale = given if given is not None else (metric.margin or 0.0, "relative")
    absolute = scale == "absolute"
    if absolute:
        est, low, high = data.abs_effect[i], data.abs_low[i], data.abs_high[i]
        av_low, av_high = data.av_abs_low[i], data.av_abs_high[i]
    else:
        est, low, high = data.rel_effect[i], data.rel_low[i], data.rel_high[i]
        av_low, av_high = data.av_rel_low[i], data.av_rel_high[i]

    def show(x: float) -> str:
        return f"{x:+.4g}" if absolute else f"{x:+.1%}"

    limit = f"{margin:.4g} (absolute)" if absolute else f"{margin:.1%}"
    fields = {"metric": metric.key, "variant": row.variant}
    if not np.isfinite(est) or not np.isfinite(low) or not np.isfinite(high):
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_no_estimate",
            f"{metric.name} for {row.variant} has no estimate yet ({row.reason or 'no data'}).",
            evidence={"reason": row.reason},
            **fields,
        )
        return reason, False, False
    harm = -metric.sign * est
    worst = -metric.sign * (low if metric.higher_is_better else high)
    best = -metric.sign * (high if metric.higher_is_better else low)
    av_best = -metric.sign * (av_high if metric.higher_is_better else av_low)
    evidence = {
        "effect": float(est),
        "scale": scale,
        "ci": [float(low), float(high)],
        "always_valid_ci": [finite(av_low), finite(av_high)],
        "margin": margin,
        "harm": float(harm),
    }
    confirmed = bool(np.isfinite(av_best) and av_best > margin)
    ci = f"CI {show(low)} to {show(high)}"
    if best > margin:
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_breach",
            f"{metric.name} for {row.variant} is {show(est)} vs {run.control} ({ci}), "
            f"significantly beyond its margin of {limit}"
            + (" (confirmed by the always-valid interval)." if confirmed else "."),
            evidence=evidence | {"always_valid_confirmed": confirmed},
            **fields,
        )
        return reason, confirmed, True
    if harm > margin:
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_beyond_margin",
            f"{metric.name} for {row.variant} is {show(est)} vs {run.control} ({ci}), beyond its "
            f"margin of {limit} (not yet significant).",
            evidence=evidence,
            **fields,
        )
        return reason, False, False
    if run.policy.guardrails.non_inferiority and worst > margin:
        reason = run.add(
            Stage.GUARDRAILS,
            "guardrail_not_non_inferior",
            f"{metric.name} for {row.variant} could be as bad as {show(-metric.sign * worst)} "
            f"({ci}): non-inferiority within {limit} is not shown.",
            evidence=evidence,
            **fields,
        )
        return reason, False, False
    reason = run.add(
        Stage.GUARDRAILS,
        "guardrail_ok",
        f"{metric.name} for {row.variant} is {show(est)} ({ci}), within its margin of {limit}.",
        evidence=evidence,
        **fields,
    )
    return reason, False, False


def harmed(run: Run, primary: MetricInfo) -> int | None:
    """The first treatment whose primary metric is significantly worse by its always-valid
    interval (valid at any look, so it may decide before the experiment is mature)."""
    for i in run.indices(primary.key):
        harm_low = _harm_low(primary, run.overall, i)
        if np.isfinite(harm_low) and harm_low > 0:
            return i
    return None


def _primary_harm_running(run: Run, primary: MetricInfo) -> Reason | None:
    data = run.overall
    i = harmed(run, primary)
    if i is not None:
        row = data.rows[i]
        return run.add(
            Stage.GUARDRAILS,
            "primary_harm_running",
            f"The primary metric {primary.name} for {row.variant} is "
            f"{data.rel_effect[i]:+.1%} vs {run.control}, significantly worse by its always-valid "
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

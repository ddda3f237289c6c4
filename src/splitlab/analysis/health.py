"""Health checks: can the results be trusted?  Each finding is a
:class:`~splitlab.analysis.snapshot.HealthCheck` (severity ``info`` when the check passes,
``warning`` or ``critical`` otherwise, with ``metric`` / ``variant`` where it is about one of
them; an ``info`` finding that cannot pass yet is marked ``pending``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from splitlab import stats
from splitlab.analysis.aggregates import Aggregates
from splitlab.analysis.compute import FamilyResult, number
from splitlab.analysis.plan import AnalysisPlan, PlannedMetric
from splitlab.analysis.snapshot import CheckName, HealthCheck, ResultRow, Severity
from splitlab.domain import Engine, MetricKind, MetricRole, ThresholdScale
from splitlab.warehouse.columns import covariate_cross, covariate_sum, metric_columns
from splitlab.warehouse.queries import uses_cuped

INFO, WARNING, CRITICAL = Severity.INFO, Severity.WARNING, Severity.CRITICAL
FloatArray = npt.NDArray[np.float64]
MIN_UNITS = 100
MULTIPLE_EXPOSURE_WARNING = 0.01
MULTIPLE_EXPOSURE_CRITICAL = 0.05
NULL_RATE_WARNING = 0.10
IMMATURE_WARNING = 0.5
TREND_P = 0.001
TREND_MIN_DAYS = 5


def _check(
    check: CheckName,
    severity: Severity,
    value: float | None,
    message: str,
    *,
    metric: str | None = None,
    variant: str | None = None,
    pending: bool = False,
    fading: bool | None = None,
) -> HealthCheck:
    about: dict[str, Any] = {"metric": metric} if metric is not None else {}
    if variant is not None:
        about["variant"] = variant
    if pending:
        about["pending"] = True
    if fading is not None:
        about["fading"] = fading
    return HealthCheck(check=check, severity=severity, value=value, message=message, **about)


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def srm_checks(plan: AnalysisPlan, agg: Aggregates) -> list[HealthCheck]:
    weights = np.array(plan.weights, dtype=float)
    out = []
    counts = agg.n[0]
    result = stats.srm_test(counts, weights)
    p = float(result.p_value)
    split = ", ".join(f"{v} {int(n)}" for v, n in zip(plan.variants, counts, strict=True))
    if math.isnan(p):
        out.append(_check(CheckName.SRM, INFO, None, "No units yet: nothing to check."))
    elif p < stats.SRM_P_THRESHOLD:
        out.append(
            _check(
                CheckName.SRM,
                CRITICAL,
                p,
                f"Sample ratio mismatch: the split ({split}) does not match the configured "
                f"weights (χ² p = {_p(p)} < 0.001). Assignment or logging is broken; "
                "do not trust the results until the cause is found.",
            )
        )
    else:
        out.append(
            _check(CheckName.SRM, INFO, p, f"Split ({split}) matches the weights (p = {_p(p)}).")
        )
    daily = agg.day_increments_n
    if daily.size:
        busy = daily.sum(axis=1) > 0
        p_days = np.asarray(stats.srm_test(daily[busy], weights).p_value)
        bad = int(np.sum(p_days < stats.SRM_P_THRESHOLD))
        worst = float(np.nanmin(p_days)) if p_days.size else math.nan
        out.append(
            _check(
                CheckName.SRM_DAILY,
                WARNING if bad else INFO,
                number(worst),
                f"{bad} day(s) with a sample ratio mismatch (p < 0.001); smallest p = {_p(worst)}."
                if bad
                else "No day shows a sample ratio mismatch.",
            )
        )
    segment_cells = agg.indices("segment")
    if segment_cells:
        p_seg = np.asarray(stats.srm_test(agg.n[segment_cells], weights).p_value)
        flagged = [
            f"{agg.cells[c].segment}={agg.cells[c].value}"
            for c, pv in zip(segment_cells, p_seg, strict=True)
            if pv < stats.SRM_P_THRESHOLD
        ]
        worst = float(np.nanmin(p_seg)) if np.isfinite(p_seg).any() else math.nan
        out.append(
            _check(
                CheckName.SRM_SEGMENT,
                WARNING if flagged else INFO,
                number(worst),
                f"Sample ratio mismatch within {', '.join(flagged)} (p < 0.001): assignment "
                "may depend on these attributes."
                if flagged
                else "No segment shows a sample ratio mismatch.",
            )
        )
    return out


def exposure_checks(plan: AnalysisPlan, agg: Aggregates) -> list[HealthCheck]:
    out = []
    included = float(agg.n[0].sum())
    excluded = float(agg.excluded.sum())
    rate = excluded / (included + excluded) if included + excluded else 0.0
    severity = (
        CRITICAL
        if rate >= MULTIPLE_EXPOSURE_CRITICAL
        else WARNING
        if rate >= MULTIPLE_EXPOSURE_WARNING
        else INFO
    )
    out.append(
        _check(
            CheckName.MULTIPLE_EXPOSURE,
            severity,
            rate,
            f"{int(excluded)} unit(s) ({rate:.2%}) saw more than one variant and are excluded."
            + (" That many suggests an assignment or caching bug." if severity != INFO else ""),
        )
    )
    smallest = float(agg.n[0].min()) if agg.n.size else 0.0
    out.append(
        _check(
            CheckName.SAMPLE_SIZE,
            WARNING if smallest < MIN_UNITS else INFO,
            smallest,
            f"The smallest variant has {int(smallest)} units, below {MIN_UNITS}: results are "
            "too noisy to act on."
            if smallest < MIN_UNITS
            else f"Every variant has at least {MIN_UNITS} units.",
        )
    )
    daily = agg.day_increments_n
    totals = daily.sum(axis=1) if daily.size else np.array([])
    busy = totals >= 2
    if int(busy.sum()) >= 2:
        worst, worst_variant = math.inf, ""
        for v, variant in enumerate(plan.variants):
            p = float(stats.chi2_omnibus(daily[busy, v], totals[busy]).p_value)
            if not math.isnan(p) and p < worst:
                worst, worst_variant = p, variant
        drift = worst < stats.SRM_P_THRESHOLD
        shares = daily[busy] / totals[busy, None]
        spread = float(np.max(shares.max(axis=0) - shares.min(axis=0)))
        out.append(
            _check(
                CheckName.ALLOCATION_DRIFT,
                WARNING if drift else INFO,
                number(worst) if math.isfinite(worst) else None,
                f"The share of {worst_variant} changes from day to day (χ² p = {_p(worst)}; "
                f"daily shares differ by up to {spread:.1%}): were weights changed mid-test? "
                "Compare only periods with the same allocation."
                if drift
                else "Daily allocation is stable.",
            )
        )
    return out


def data_checks(plan: AnalysisPlan, agg: Aggregates) -> list[HealthCheck]:
    out = []
    units = float(agg.n[0].sum())
    for i, planned in enumerate(plan.metrics):
        metric = planned.definition
        names = metric_columns(i)
        events = float(agg.column(names.events)[0].sum())
        nulls = float(agg.column(names.nulls)[0].sum())
        if units and events == 0:
            message = (
                f"No {metric.event!r} events match metric {metric.key!r} in any unit's "
                "window: check the event name and filter."
            )
            if metric.source == "units":
                message = (
                    f"No analysed unit has a value in column {metric.column!r} of the unit "
                    f"table for metric {metric.key!r}: import it (splitlab import units) or "
                    "check the column name and the unit ids."
                )
            out.append(_check(CheckName.NO_DATA, WARNING, 0, message, metric=metric.key))
        needs_value = metric.kind in (MetricKind.SUM, MetricKind.RATIO, MetricKind.QUANTILE)
        if needs_value and events:
            rate = nulls / events
            out.append(
                _check(
                    CheckName.NULL_RATE,
                    WARNING if rate > NULL_RATE_WARNING else INFO,
                    rate,
                    f"{rate:.1%} of the matching events have no value"
                    + (f" in {metric.value_field!r}" if metric.value_field else "")
                    + (": the metric ignores them." if rate > NULL_RATE_WARNING else "."),
                    metric=metric.key,
                )
            )
        if metric.window_hours is not None and units:
            immature = float(agg.column(names.immature)[0].sum()) / units
            if immature > 0:
                out.append(
                    _check(
                        CheckName.MATURITY,
                        WARNING if immature > IMMATURE_WARNING else INFO,
                        immature,
                        f"{immature:.1%} of units are still inside the {metric.window_hours:g} h "
                        f"window of {metric.key!r}: their values will still grow.",
                        metric=metric.key,
                    )
                )
        if uses_cuped(metric):
            n = agg.n[0]
            sx, sxx = agg.column(names.sum_x)[0], agg.column(names.sum_x_sq)[0]
            control = stats.SampleStats(n[0], sx[0], sxx[0])
            treatment = stats.SampleStats(n[1:], sx[1:], sxx[1:])
            p_values = np.atleast_1d(stats.welch_ttest(control, treatment).p_value)
            worst = float(np.nanmin(p_values)) if np.isfinite(p_values).any() else math.nan
            imbalanced = worst < stats.SRM_P_THRESHOLD
            if math.isnan(worst):
                message = (
                    f"Pre-period {metric.key!r} cannot be compared: it has no variance before "
                    f"exposure (no {metric.event!r} events in the {metric.cuped_days} days "
                    "before?), so CUPED has nothing to adjust with."
                )
            elif imbalanced:
                message = (
                    f"Before exposure, the variants already differ on {metric.key!r} "
                    f"(A/A p = {_p(worst)}): randomisation may be broken."
                )
            else:
                message = f"Pre-period {metric.key!r} is balanced (p = {_p(worst)})."
            out.append(
                _check(
                    CheckName.PRE_PERIOD_IMBALANCE,
                    WARNING if imbalanced else INFO,
                    number(worst),
                    message,
                    metric=metric.key,
                )
            )
    return out


def covariate_checks(plan: AnalysisPlan, agg: Aggregates) -> list[HealthCheck]:
    """Named covariates are measured before exposure, so the variants should not differ on
    them: Welch's test of each covariate's mean, control against every treatment (a warning
    below p = 0.001, as for a pre-period; the value is the smallest p)."""
    out = []
    n = agg.n[0]
    for j, covariate in enumerate(plan.covariates):
        total = agg.column(covariate_sum(j))[0]
        squares = agg.column(covariate_cross(j, j))[0]
        control = stats.SampleStats(n[0], total[0], squares[0])
        treatment = stats.SampleStats(n[1:], total[1:], squares[1:])
        p_values = np.atleast_1d(stats.welch_ttest(control, treatment).p_value)
        worst = float(np.nanmin(p_values)) if np.isfinite(p_values).any() else math.nan
        imbalanced = worst < stats.SRM_P_THRESHOLD
        name = repr(covariate.name)
        if math.isnan(worst):
            message = f"Covariate {name} has no variance: it cannot adjust anything."
        elif imbalanced:
            message = (
                f"Before exposure, the variants already differ on covariate {name} "
                f"(p = {_p(worst)}): randomisation may be broken, or it is not a pre-exposure "
                "measurement."
            )
        else:
            message = f"Covariate {name} is balanced across variants (p = {_p(worst)})."
        out.append(
            _check(
                CheckName.PRE_PERIOD_IMBALANCE,
                WARNING if imbalanced else INFO,
                number(worst),
                message,
            )
        )
    return out


def _daily_relative_effects(agg: Aggregates, i: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per exposure-day cohort (day increments, not cumulative) of metric ``i``: day number
    (days,), and per treatment × day the relative effect and its delta-method variance."""
    days = agg.indices("day")
    names = metric_columns(i)
    n = np.diff(agg.n[days], axis=0, prepend=0.0).T
    sy = np.diff(agg.column(names.sum)[days], axis=0, prepend=0.0).T
    syy = np.diff(agg.column(names.sum_sq)[days], axis=0, prepend=0.0).T
    c = stats.SampleStats(n[:1], sy[:1], syy[:1])
    tr = stats.SampleStats(n[1:], sy[1:], syy[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        m_c, m_t = c.mean, tr.mean
        var = stats.relative_effect_variance(m_c, m_t, c.variance / c.n, tr.variance / tr.n)
        effect = m_t / m_c - 1.0
    return np.arange(len(days), dtype=float), effect, var


FADING = "units exposed later show a larger effect"
"""The phrase of a novelty warning whose effect fades with time since exposure (such a warning
is marked ``fading``; the decision engine holds a running experiment on it)."""


def _trend_message(variant: str, metric: str, slope: float, p: float, *, later_larger: bool) -> str:
    """What a trend across exposure cohorts means.  A cohort is measured from its first
    exposure until now, so early cohorts are seen longest: a larger effect in later cohorts
    says the effect fades with time since exposure (novelty); a smaller one is either the
    effect wearing off over calendar time or growing as users adapt (primacy)."""
    seen = (
        f"The effect of {variant} on {metric!r} differs by exposure cohort: "
        + (FADING if later_larger else "units exposed earlier show a larger effect")
        + f" ({slope:+.2%} per day of first exposure, p = {_p(p)}). "
    )
    if later_larger:
        return seen + (
            "Units exposed early have been measured longest, so the effect likely fades with "
            "time since exposure (a novelty effect): the lasting effect may be smaller than the "
            "overall estimate; wait for it to settle before deciding."
        )
    return seen + (
        "Either the effect is wearing off over calendar time (novelty fading in the "
        "population) or it grows as users adapt (primacy); look at the effect by days since "
        "exposure before deciding."
    )


def trend_checks(
    plan: AnalysisPlan, agg: Aggregates, results: list[ResultRow]
) -> list[HealthCheck]:
    out = []
    overall = {(r.metric, r.variant): r for r in results if r.segment is None}
    for i, metric in enumerate(plan.definitions):
        if metric.kind not in (MetricKind.BINARY, MetricKind.COUNT, MetricKind.SUM):
            continue
        trend = stats.weighted_trend(*_daily_relative_effects(agg, i))  # one per treatment
        for t, variant in enumerate(plan.treatments):
            if trend.points[t] < TREND_MIN_DAYS:
                continue
            slope, p = float(trend.slope[t]), float(trend.p_value[t])
            row = overall.get((metric.key, variant))
            effect = row.rel_effect if row is not None and row.rel_effect is not None else 0.0
            trending = p < TREND_P
            out.append(
                _check(
                    CheckName.NOVELTY,
                    WARNING if trending else INFO,
                    p,
                    _trend_message(variant, metric.key, slope, p, later_larger=slope * effect > 0)
                    if trending
                    else f"The daily effect of {variant} on {metric.key!r} is stable over time.",
                    metric=metric.key,
                    variant=variant,
                    fading=slope * effect > 0 if trending else None,
                )
            )
    return out


def _guardrail_finding(planned: PlannedMetric, entry: ResultRow) -> tuple[Severity, float, str]:
    """Severity, harm (on the margin's scale; > 0 is worse) and message of one guardrail
    result; ``None`` when the result has no numbers to judge."""
    absolute = planned.margin is not None and planned.margin_scale is ThresholdScale.ABSOLUTE
    if absolute:
        effect, low, high = entry.abs_effect, entry.abs_ci_low, entry.abs_ci_high
    else:
        effect, low, high = entry.rel_effect, entry.rel_ci_low, entry.rel_ci_high
    if effect is None or low is None or high is None:
        raise LookupError
    sign = 1.0 if planned.higher_is_better else -1.0
    harm = -sign * effect  # > 0 means worse
    worst_bound = -sign * (low if sign > 0 else high)  # pessimistic end of the CI
    best_bound = -sign * (high if sign > 0 else low)
    name = f"{planned.key!r} for {entry.variant}"
    margin = planned.margin
    if margin is None:
        if best_bound > 0:
            return (
                CRITICAL,
                harm,
                f"Guardrail breached: {name} is significantly worse ({effect:+.1%}).",
            )
        return INFO, harm, f"{name} shows no significant harm."
    if absolute:
        bound = "≥" if sign > 0 else "≤"
        threshold = f"absolute: treatment {bound} control {-sign * margin:+.4g}"
        shown, worst = f"{effect:+.4g}", f"{-sign * worst_bound:+.4g}"
    else:
        threshold = f"{1 - sign * margin:g} × control"
        shown, worst = f"{effect:+.1%}", f"{-sign * worst_bound:+.1%}"
    if harm > margin:
        return (
            CRITICAL,
            harm,
            f"Guardrail breached: {name} is {shown} vs control, beyond the margin ({threshold}).",
        )
    if worst_bound > margin:
        return (
            WARNING,
            harm,
            f"Non-inferiority not shown: {name} could be as bad as {worst}, beyond the margin "
            f"({threshold}).",
        )
    return INFO, harm, f"{name} is within its margin ({threshold})."


def guardrail_checks(plan: AnalysisPlan, results: list[ResultRow]) -> list[HealthCheck]:
    """Each guardrail × treatment: beyond its margin (critical), non-inferiority not shown
    (warning) or within it; without a margin, significantly worse (critical) or not.  The
    value is the harm on the margin's scale (relative unless the margin is absolute)."""
    out = []
    for planned in plan.metrics:
        if planned.role is not MetricRole.GUARDRAIL:
            continue
        for entry in results:
            if entry.metric != planned.key or entry.segment is not None:
                continue
            try:
                severity, harm, message = _guardrail_finding(planned, entry)
            except LookupError:
                continue
            variant = entry.variant
            out.append(
                _check(
                    CheckName.GUARDRAIL,
                    severity,
                    harm,
                    message,
                    metric=planned.key,
                    variant=variant,
                )
            )
    return out


def power_checks(
    plan: AnalysisPlan, agg: Aggregates, results: list[ResultRow]
) -> list[HealthCheck]:
    primary = next((m for m in plan.metrics if m.role is MetricRole.PRIMARY), None)
    if primary is None:
        return []
    entries = [r for r in results if r.metric == primary.key and r.segment is None]
    if not entries or plan.mde is None:
        return [
            _check(
                CheckName.UNDERPOWERED,
                INFO,
                None,
                "The plan has no minimum detectable effect, so power cannot be judged.",
                pending=True,
            )
        ]
    powers = [e.power for e in entries if e.power is not None]
    if not powers:
        return [
            _check(
                CheckName.UNDERPOWERED,
                INFO,
                None,
                "Not enough data to estimate power yet.",
                pending=True,
            )
        ]
    power = min(powers)
    remaining = max((e.days_remaining or 0) for e in entries)
    elapsed = len(agg.indices("day"))
    total = elapsed + remaining
    too_long = plan.max_days is not None and total > plan.max_days
    if power >= plan.power:
        return [
            _check(
                CheckName.UNDERPOWERED,
                INFO,
                power,
                f"Power {power:.0%} against a {plan.mde:.1%} effect on {primary.key!r} meets "
                f"the planned {plan.power:.0%}.",
            )
        ]
    return [
        _check(
            CheckName.UNDERPOWERED,
            WARNING if too_long else INFO,
            power,
            f"Power so far is {power:.0%} (planned {plan.power:.0%}) for a {plan.mde:.1%} "
            f"effect on {primary.key!r}; about {remaining} more day(s) needed"
            + (f", past the planned maximum of {plan.max_days} days." if too_long else "."),
            pending=not too_long,
        )
    ]


BAYESIAN_DAILY_FALSE_POSITIVES = 0.37
"""A/A rate of "chance to win > 95 % (or < 5 %)" read daily for 14 days (docs/validity.md)."""


def horizon_checks(
    plan: AnalysisPlan, agg: Aggregates, results: list[ResultRow]
) -> list[HealthCheck]:
    """Bayesian engine only: is the result read before its planned horizon?

    The horizon is ``plan.max_days`` days of data, else the units per arm the plan's MDE needs
    (``n_required`` of the primary metric).  Acting on "chance to win > 95 %" before then —
    checking daily and stopping at the first crossing — declares a winner in about 37 % of
    A/A tests instead of 10 % (measured by ``splitlab validate``).
    """
    if plan.engine is not Engine.BAYESIAN:
        return []
    primary = next((m for m in plan.metrics if m.role is MetricRole.PRIMARY), None)
    entries = [
        r for r in results if primary is not None and r.metric == primary.key and r.segment is None
    ]
    elapsed = len(agg.indices("day"))
    needed = max((e.n_required or 0.0 for e in entries), default=0.0)
    smallest = float(agg.n[0].min()) if agg.n.size else 0.0
    peeking = (
        f'Reading "chance to win > 95%" every day and acting at the first crossing declares a '
        f"winner in about {BAYESIAN_DAILY_FALSE_POSITIVES:.0%} of A/A tests (10% at one look at "
        "the horizon): wait for the horizon, or use the sequential engine to decide early."
    )
    if plan.max_days is not None:
        early = elapsed < plan.max_days
        progress = f"day {elapsed} of {plan.max_days} planned"
    elif needed > 0:
        early = smallest < needed
        progress = f"{int(smallest):,} of the {int(needed):,} units per variant the plan needs"
    else:
        return [
            _check(
                CheckName.BAYESIAN_HORIZON,
                INFO,
                None,
                "The plan sets no horizon (max_days, or an MDE to size it), so there is no point "
                "at which the chance to win is safe to act on. " + peeking,
            )
        ]
    if early:
        return [
            _check(
                CheckName.BAYESIAN_HORIZON,
                WARNING,
                elapsed if plan.max_days is not None else smallest,
                f"Read before its planned horizon ({progress}). " + peeking,
            )
        ]
    return [
        _check(
            CheckName.BAYESIAN_HORIZON,
            INFO,
            elapsed if plan.max_days is not None else smallest,
            f"The planned horizon is reached ({progress}): the chance to win can be acted on.",
        )
    ]


def health_checks(
    plan: AnalysisPlan,
    agg: Aggregates,
    results: list[ResultRow],
    families: list[FamilyResult],
) -> list[HealthCheck]:
    """Every check, in a stable order (assignment, exposure, data, trends, guardrails, power,
    Bayesian horizon)."""
    del families
    return (
        srm_checks(plan, agg)
        + exposure_checks(plan, agg)
        + data_checks(plan, agg)
        + covariate_checks(plan, agg)
        + trend_checks(plan, agg, results)
        + guardrail_checks(plan, results)
        + power_checks(plan, agg, results)
        + horizon_checks(plan, agg, results)
    )

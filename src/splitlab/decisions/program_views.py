"""The three program views over the decided experiments ``decisions.program`` loads:
cost-benefit, the hypothesis tracker with the team's calibration, and the optimisation
history with its James–Stein-shrunk total (definitions in ``decisions.program``)."""

from __future__ import annotations

from datetime import datetime
from statistics import median
from typing import TYPE_CHECKING, Any

import numpy as np

from splitlab.decisions.program import (
    LEVEL,
    VIEWS,
    ProgramFilters,
    ProgramItem,
    item_json,
    load_items,
    rounded,
)
from splitlab.errors import ValidationError
from splitlab.stats.calibration import brier, reliability
from splitlab.stats.shrinkage import raw_total, shrunk_total

if TYPE_CHECKING:
    from splitlab.services import Services


# ---------------------------------------------------------------- cost-benefit

QUADRANTS = {
    (False, True): "quick wins",
    (True, True): "strategic bets",
    (False, False): "cheap lessons",
    (True, False): "costly lessons",
}
"""(cost above the split, benefit above zero) → the quadrant's label."""


def cost_benefit(items: list[ProgramItem], *, benefit: str = "lift") -> dict[str, Any]:
    """Each decided experiment's total cost (engineering + run cost per day × days run)
    against its benefit (good-direction lift, or the recommendation's value per day), with
    its confidence and quadrant; the cost split is the median total cost."""
    points, missing_costs, missing_benefit = [], [], []
    currencies = set()
    for item in items:
        costs = item.costs or {}
        engineering = costs.get("engineering")
        per_day = costs.get("run_per_day")
        if engineering is None and per_day is None:
            missing_costs.append(item.key)
            continue
        days = item.run_days or 0.0
        run = (per_day or 0.0) * days
        if benefit == "value":
            value = item.value
            amount = value.get("per_day") if value else None
            low = value.get("ci_low") if value else None
            high = value.get("ci_high") if value else None
        else:
            amount, low, high = item.good_lift, item.good_low, item.good_high
        if amount is None:
            missing_benefit.append(item.key)
            continue
        if costs.get("currency"):
            currencies.add(costs["currency"])
        points.append(
            item_json(item)
            | {
                "engineering_cost": engineering or 0.0,
                "run_cost": round(run, 2),
                "run_days": rounded(days, 2),
                "cost": round((engineering or 0.0) + run, 2),
                "benefit": rounded(amount),
                "benefit_low": rounded(low),
                "benefit_high": rounded(high),
            }
        )
    split = median(p["cost"] for p in points) if points else 0.0
    for p in points:
        p["quadrant"] = QUADRANTS[(p["cost"] > split, (p["benefit"] or 0) > 0)]
    counts = {label: sum(p["quadrant"] == label for p in points) for label in QUADRANTS.values()}
    return {
        "benefit": benefit,
        "points": points,
        "cost_split": split,
        "quadrants": counts,
        "currency": currencies.pop() if len(currencies) == 1 else "",
        "total_cost": round(sum(p["cost"] for p in points), 2),
        "missing_costs": missing_costs,
        "missing_benefit": missing_benefit,
    }


# ---------------------------------------------------------------- hypothesis tracker


def _period(at: datetime, period: str) -> str:
    if period == "month":
        return f"{at.year:04d}-{at.month:02d}"
    return f"{at.year:04d}-Q{(at.month - 1) // 3 + 1}"


MATCHES = ("called", "surprise", "coin_flip", "no_forecast")


def match(item: ProgramItem) -> str:
    """Prediction against the verdict: ``called`` (a win forecast above 50% and it won, or
    below 50% and it did not), ``surprise``, ``coin_flip`` (exactly 50%: no call, though
    the Brier score still counts it), ``no_forecast`` or ``no_result``."""
    if item.verdict == "no_result":
        return "no_result"
    chance = item.predicted_probability
    if chance is None:
        return "no_forecast"
    if chance == 0.5:
        return "coin_flip"
    return "called" if (chance > 0.5) == (item.verdict == "won") else "surprise"


def tracker(items: list[ProgramItem], *, period: str = "quarter") -> dict[str, Any]:
    """Hypothesis, prediction and verdict of every decided experiment (newest first), and the
    team's calibration: Brier score, skill against the base rate, reliability bins, and the
    Brier score per ``period`` of decision."""
    rows = []
    for item in reversed(items):
        rows.append(
            item_json(item)
            | {
                "hypothesis": item.hypothesis,
                "predicted_outcome": item.predicted_outcome,
                "predicted_probability": item.predicted_probability,
                "match": match(item),
                "decision": (
                    {
                        "action": item.decision.action,
                        "variant": item.decision.variant,
                        "rationale": item.decision.rationale,
                        "override": item.decision.override,
                    }
                    if item.decision
                    else None
                ),
                "learnings": [
                    {"author": n.author, "body": n.body, "at": n.created_at.isoformat()}
                    for n in item.notes
                ],
            }
        )
    scored = [i for i in items if i.predicted_probability is not None and i.verdict != "no_result"]
    forecasts = np.array([i.predicted_probability for i in scored], dtype=float)
    outcomes = np.array([1.0 if i.verdict == "won" else 0.0 for i in scored])
    overall = brier(forecasts, outcomes)
    bins = reliability(forecasts, outcomes, bins=5) if scored else []
    over_time = []
    periods: dict[str, list[ProgramItem]] = {}
    for item in scored:
        if item.decided is not None:
            periods.setdefault(_period(item.decided, period), []).append(item)
    for name in sorted(periods):
        group = periods[name]
        score = brier(
            np.array([i.predicted_probability for i in group], dtype=float),
            np.array([1.0 if i.verdict == "won" else 0.0 for i in group]),
        )
        assert score is not None
        over_time.append(
            {
                "period": name,
                "n": score.n,
                "brier": round(score.score, 6),
                "base_rate": round(score.base_rate, 6),
                "mean_forecast": round(float(np.mean([i.predicted_probability for i in group])), 6),
            }
        )
    counts = {m: sum(r["match"] == m for r in rows) for m in MATCHES}
    return {
        "rows": rows,
        "matches": counts,
        "verdicts": {
            v: sum(i.verdict == v for i in items) for v in ("won", "lost", "inconclusive")
        },
        "calibration": {
            "n": len(scored),
            "brier": round(overall.score, 6) if overall else None,
            "reference": round(overall.reference, 6) if overall else None,
            "skill": rounded(overall.skill) if overall else None,
            "base_rate": round(overall.base_rate, 6) if overall else None,
            "bins": [
                {
                    "low": b.low,
                    "high": b.high,
                    "n": b.n,
                    "mean_forecast": rounded(b.mean_forecast),
                    "observed": rounded(b.observed),
                    "observed_low": rounded(b.observed_low),
                    "observed_high": rounded(b.observed_high),
                }
                for b in bins
            ],
            "period": period,
            "over_time": over_time,
        },
    }


# ---------------------------------------------------------------- impact


def impact(items: list[ProgramItem]) -> dict[str, Any]:
    """Every shipped change with its measured lift, the cumulative raw and James–Stein-shrunk
    sums over time, and both totals with their 95% intervals. The shrinkage runs over every
    decided experiment with a lift and an interval (the population the winners were picked
    from), not only the shipped ones."""
    population = [i for i in items if i.good_lift is not None and i.se is not None and i.se > 0]
    y = np.array([i.good_lift for i in population], dtype=float)
    s = np.array([i.se for i in population], dtype=float)
    shipped = np.array([i.shipped for i in population], dtype=bool)
    raw = raw_total(y, s, shipped, level=LEVEL)
    total, shrunk = shrunk_total(y, s, shipped, level=LEVEL)
    changes = []
    cumulative_raw = cumulative_shrunk = cumulative_var = 0.0
    for index, item in enumerate(population):
        if not item.shipped:
            continue
        estimate = float(shrunk.estimates[index])
        cumulative_raw += float(y[index])
        cumulative_var += float(s[index]) ** 2
        cumulative_shrunk += estimate
        changes.append(
            item_json(item)
            | {
                "shrunk_lift": round(estimate, 6),
                "shrinkage": round(float(shrunk.factors[index]), 6),
                "cumulative_raw": round(cumulative_raw, 6),
                "cumulative_raw_se": round(cumulative_var**0.5, 6),
                "cumulative_shrunk": round(cumulative_shrunk, 6),
            }
        )
    unmeasured = [i.key for i in items if i.shipped and (i.good_lift is None or not i.se)]

    def as_json(t: Any) -> dict[str, Any]:
        return {
            "value": round(t.value, 6),
            "se": round(t.se, 6),
            "ci_low": round(t.ci_low, 6),
            "ci_high": round(t.ci_high, 6),
            "level": t.level,
        }

    return {
        "changes": changes,
        "population": len(population),
        "shrunk": shrunk.shrunk,
        "grand_mean": rounded(shrunk.grand_mean) if population else None,
        "raw_total": as_json(raw),
        "shrunk_total": as_json(total),
        "unmeasured": unmeasured,
    }


# ---------------------------------------------------------------- entry point


def program_view(
    *, services: Services, view: str, filters: ProgramFilters, now: datetime
) -> dict[str, Any]:
    """One program view (``impact``, ``tracker`` or ``cost-benefit``) as JSON-ready data."""
    if view not in VIEWS:
        raise ValidationError(
            f"no program view {view[:40]!r}",
            details=[{"loc": ["path", "view"], "msg": f"one of {', '.join(VIEWS)}"}],
        )
    items = load_items(services=services, filters=filters, now=now)
    if view == "impact":
        data = impact(items)
    elif view == "tracker":
        data = tracker(items, period=filters.period)
    else:
        data = cost_benefit(items, benefit=filters.benefit)
    return {
        "view": view,
        "filters": {name: getattr(filters, name) for name in filters.__dataclass_fields__},
        "decided": len(items),
        "generated_at": now.isoformat(),
    } | data

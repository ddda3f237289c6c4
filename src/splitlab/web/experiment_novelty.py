"""The experiment page's days-since-exposure (novelty) view: the snapshot's
``exposure_days`` points as one chart per metric (each treatment's relative effect by whole
day since exposure, with its interval) and a plain-language reading of each treatment's trend.

No statistics here: the points and the trend's shape (fading, growing, steady) are the
snapshot's own (``analysis.novelty``); this module lays them out and words them.
"""

from __future__ import annotations

import math
from typing import Any

from splitlab.analysis.exposure_days import TIMING_KEY
from splitlab.analysis.health import TREND_P
from splitlab.analysis.snapshot import ExposureDayPoint, ExposureDayTrend, Snapshot
from splitlab.web import experiment_view as ev

MEASURED_KINDS = ("binary", "count", "sum")
"""Metric kinds the view covers (``warehouse.exposure_days.KINDS``)."""

_SHAPES = {
    "fading": "it fades with time since exposure{trend} — a novelty effect: the lasting effect "
    "is likely smaller than the overall estimate",
    "growing": "it grows with time since exposure{trend} — users adapting (a primacy or "
    "learning effect): the lasting effect may be larger than the overall estimate",
    "steady": "no clear trend with time since exposure{trend}: steady",
    "too_few_days": "too few days since exposure yet to judge a trend",
}
"""The verdict per trend shape; ``{trend}`` is the slope and its p-value."""


def _estimate(point: ExposureDayPoint) -> str:
    interval = f"[{ev.pct(point.rel_ci_low)}, {ev.pct(point.rel_ci_high)}]"
    return f"{ev.pct(point.rel_effect)} {interval}"


QUOTED_WIDTH = 2.0
"""The reading quotes the latest day whose interval is at most this many times as wide as the
first day's (the chart shows every day; the last few rest on the earliest units alone)."""


def _width(point: ExposureDayPoint) -> float:
    if point.rel_ci_low is None or point.rel_ci_high is None:
        return math.inf
    return point.rel_ci_high - point.rel_ci_low


def reading(variant: str, points: list[ExposureDayPoint], trend: ExposureDayTrend | None) -> str:
    """One sentence: the effect on the first day measured and on the latest day about as
    precise (``QUOTED_WIDTH``), and what the trend says (the snapshot's ``shape``, with its
    p-value)."""
    shown = [p for p in points if p.rel_effect is not None]
    if not shown:
        return f"No relative effect of {variant} by day since exposure yet."
    first = shown[0]
    last = [p for p in shown if _width(p) <= QUOTED_WIDTH * _width(first)][-1]
    text = f"The effect of {variant} on day {first.days_since_exposure} after exposure is "
    text += _estimate(first)
    if last is not first:
        text += f", by day {last.days_since_exposure} {_estimate(last)}"
    if trend is None:
        return text + "."
    about = ""
    if trend.p_value is not None and trend.slope is not None:
        p = ev.pvalue(trend.p_value)
        about = f" ({ev.pct(trend.slope, 2)} per day, p {p if p.startswith('<') else '= ' + p}"
        about += f"; the novelty check needs p < {TREND_P:g})" if trend.shape == "steady" else ")"
    return f"{text}: {_SHAPES[trend.shape].format(trend=about)}."


def novelty_view(snapshot: Snapshot) -> dict[str, Any]:
    """Per metric with points (the plan's order): its treatments' series (days, relative
    effect, interval, arm sizes) and readings; ``note`` says why there is nothing to show."""
    infos = ev.metric_info(snapshot)
    trends = {(t.metric, t.variant): t for t in snapshot.exposure_day_trends}
    by_metric: dict[str, dict[str, list[ExposureDayPoint]]] = {}
    for point in snapshot.exposure_days:
        by_metric.setdefault(point.metric, {}).setdefault(point.variant, []).append(point)
    metrics = []
    for key, series in by_metric.items():
        info = infos.get(key)
        metrics.append(
            {
                "metric": key,
                "name": info.name if info else key,
                "series": [
                    {
                        "variant": variant,
                        "days": [p.days_since_exposure for p in points],
                        "rel": [p.rel_effect for p in points],
                        "low": [p.rel_ci_low for p in points],
                        "high": [p.rel_ci_high for p in points],
                        "control_n": [p.control_n for p in points],
                        "treatment_n": [p.treatment_n for p in points],
                    }
                    for variant, points in series.items()
                ],
                "readings": [
                    {
                        "variant": variant,
                        "shape": trends[(key, variant)].shape if (key, variant) in trends else None,
                        "text": reading(variant, points, trends.get((key, variant))),
                    }
                    for variant, points in series.items()
                ],
            }
        )
    return {"metrics": metrics, "note": "" if metrics else _why_empty(snapshot)}


def _why_empty(snapshot: Snapshot) -> str:
    kinds = [m.kind for m in ev.metric_info(snapshot).values()]
    if not any(kind in MEASURED_KINDS for kind in kinds):
        return (
            "The days-since-exposure view covers binary, count and sum metrics; this "
            "experiment's metrics are ratios or quantiles."
        )
    if not snapshot.daily:
        return "No daily series in this snapshot, so no days-since-exposure view."
    if TIMING_KEY in snapshot.timings_ms:  # the step ran and found no complete day
        return "No unit has a complete day since exposure yet."
    return (
        "The experiment's settings changed since this snapshot, so its days-since-exposure "
        "view waits for the next analysis (new data, or a refresh)."
    )

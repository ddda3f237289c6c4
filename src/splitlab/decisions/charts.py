"""The report's charts, as data and as inline SVG (no script, no external resource).

* :func:`forest` — every overall comparison's relative effect with its CI, coloured by what
  it means for the metric's direction (significant improvement, significant regression,
  neither);
* :func:`daily_series` — the primary metric's cumulative relative effect per day per
  treatment, with its CI band.

The PDF report (``decisions.report_pdf``) draws the same data with fpdf2's primitives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from html import escape

from splitlab.analysis.snapshot import ResultRow, Snapshot
from splitlab.decisions.readout import MetricInfo, alpha_of, metric_infos, percent
from splitlab.domain import Direction, Engine, MetricRole

GOOD, BAD, NEUTRAL = "#0072b2", "#b84700", "#5d6778"
"""Okabe-Ito blue and vermilion (as the dashboard's --good and --bad), and grey."""
SERIES = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")


@dataclass(frozen=True)
class ForestItem:
    """One comparison on the forest plot."""

    label: str
    effect: float
    low: float
    high: float
    tone: str
    """``good``, ``bad`` or ``neutral``."""


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _tone(row: ResultRow, info: MetricInfo, alpha: float) -> str:
    if row.engine is Engine.BAYESIAN:
        significant = _finite(row.chance_to_win) and (
            row.chance_to_win > 1 - alpha or row.chance_to_win < alpha  # type: ignore[operator]
        )
    else:
        p = row.p_value_adjusted if _finite(row.p_value_adjusted) else row.p_value
        significant = _finite(p) and p < alpha  # type: ignore[operator]
    if not significant or not row.rel_effect:
        return "neutral"
    good = (row.rel_effect > 0) == (info.direction is Direction.INCREASE)
    return "good" if good else "bad"


def forest(snapshot: Snapshot) -> list[ForestItem]:
    """Overall comparisons with a finite relative effect and CI, in plan order."""
    infos = metric_infos(snapshot)
    alpha = alpha_of(snapshot)
    items = []
    for row in snapshot.overall():
        low, high = (
            (row.credible_low, row.credible_high)
            if row.engine is Engine.BAYESIAN
            else (row.rel_ci_low, row.rel_ci_high)
        )
        if row.reason or not _finite(row.rel_effect, low, high):
            continue
        info = infos[row.metric]
        multi = len(snapshot.units) > 2
        label = info.name + (f" · {row.variant}" if multi else "")
        items.append(
            ForestItem(label, row.rel_effect, low, high, _tone(row, info, alpha))  # type: ignore[arg-type]
        )
    return items


@dataclass(frozen=True)
class Series:
    """One treatment's cumulative daily relative effect with its CI."""

    variant: str
    days: tuple[date, ...]
    effect: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


def primary_metric(snapshot: Snapshot) -> MetricInfo | None:
    """The primary metric (the first metric when none is marked primary)."""
    infos = list(metric_infos(snapshot).values())
    primary = [i for i in infos if i.role is MetricRole.PRIMARY]
    chosen = primary or infos
    return chosen[0] if chosen else None


def daily_series(snapshot: Snapshot, metric: str) -> list[Series]:
    """The cumulative daily relative effect of ``metric`` per treatment (finite days only)."""
    by_variant: dict[str, list[tuple[date, float, float, float]]] = {}
    for point in snapshot.daily:
        if point.metric != metric or point.reason:
            continue
        if _finite(point.rel_effect, point.rel_ci_low, point.rel_ci_high):
            by_variant.setdefault(point.variant, []).append(
                (point.day, point.rel_effect, point.rel_ci_low, point.rel_ci_high)  # type: ignore[arg-type]
            )
    series = []
    for variant, points in by_variant.items():
        points.sort()
        series.append(
            Series(
                variant=variant,
                days=tuple(p[0] for p in points),
                effect=tuple(p[1] for p in points),
                low=tuple(p[2] for p in points),
                high=tuple(p[3] for p in points),
            )
        )
    return series


def nice_range(values: list[float]) -> tuple[float, float]:
    """An axis range that contains ``values`` and zero, with a little air."""
    low, high = min([0.0, *values]), max([0.0, *values])
    pad = (high - low) * 0.08 or 0.01
    return low - pad, high + pad


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values inside ``[low, high]``."""
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 0.01
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


COLOURS = {"good": GOOD, "bad": BAD, "neutral": NEUTRAL}


def tick_label(value: float) -> str:
    """An axis label: ``20%``, ``-2.5%``."""
    pct = value * 100
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:.1f}%"


def forest_svg(items: list[ForestItem], *, title: str = "Relative effect with CI") -> str:
    """The forest plot as an inline ``<svg>`` element."""
    if not items:
        return ""
    label_w, plot_w, row_h, top = 230, 420, 26, 40
    width, height = label_w + plot_w + 20, top + row_h * len(items) + 40
    lo, hi = nice_range([v for i in items for v in (i.low, i.high)])

    def x(value: float) -> float:
        return label_w + (value - lo) / (hi - lo) * plot_w

    parts = [
        f'<svg role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="18" font-weight="bold" font-size="14">{escape(title)}</text>',
    ]
    axis_y = top + row_h * len(items)
    for tick in ticks(lo, hi):
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{axis_y}" stroke="#e4e7ec"/>'
            f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#5d6778">'
            f"{escape(tick_label(tick))}</text>"
        )
    zero = x(0.0)
    parts.append(
        f'<line x1="{zero:.1f}" y1="{top - 6}" x2="{zero:.1f}" y2="{axis_y}" stroke="#1d2330"/>'
    )
    for index, item in enumerate(items):
        y = top + row_h * index + row_h / 2
        colour = COLOURS[item.tone]
        tip = f"{item.label}: {percent(item.effect)} ({percent(item.low)} to {percent(item.high)})"
        parts.append(
            f"<g><title>{escape(tip)}</title>"
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(item.label[:40])}</text>"
            f'<line x1="{x(item.low):.1f}" y1="{y:.1f}" x2="{x(item.high):.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<circle cx="{x(item.effect):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/></g>'
        )
    parts.append(
        f'<text x="{label_w}" y="{height - 6}" fill="#5d6778">blue: significant improvement; '
        "orange: significant regression; grey: not significant</text></svg>"
    )
    return "".join(parts)


def daily_svg(series: list[Series], *, title: str) -> str:
    """The cumulative daily effect lines with CI bands as an inline ``<svg>`` element."""
    series = [s for s in series if s.days]
    if not series:
        return ""
    width, height, left, right, top, bottom = 670, 300, 60, 20, 40, 50
    days = sorted({d for s in series for d in s.days})
    lo, hi = nice_range([v for s in series for v in (*s.low, *s.high)])
    span = max(len(days) - 1, 1)
    index = {d: i for i, d in enumerate(days)}

    def x(day: date) -> float:
        return left + index[day] / span * (width - left - right)

    def y(value: float) -> float:
        return top + (hi - value) / (hi - lo) * (height - top - bottom)

    parts = [
        f'<svg role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="18" font-weight="bold" font-size="14">{escape(title)}</text>',
    ]
    for tick in ticks(lo, hi):
        ty = y(tick)
        parts.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{width - right}" y2="{ty:.1f}" '
            f'stroke="{"#1d2330" if abs(tick) < 1e-12 else "#e4e7ec"}"/>'
            f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#5d6778">'
            f"{escape(tick_label(tick))}</text>"
        )
    for day, anchor in ((days[0], "start"), (days[len(days) // 2], "middle"), (days[-1], "end")):
        parts.append(
            f'<text x="{x(day):.1f}" y="{height - bottom + 18}" text-anchor="{anchor}" '
            f'fill="#5d6778">{day.isoformat()}</text>'
        )
    for number, s in enumerate(series):
        colour = SERIES[number % len(SERIES)]
        upper = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in zip(s.days, s.high, strict=True))
        lower = " ".join(
            f"{x(d):.1f},{y(v):.1f}" for d, v in reversed(list(zip(s.days, s.low, strict=True)))
        )
        line = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in zip(s.days, s.effect, strict=True))
        parts.append(
            f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.15"/>'
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{left + 10 + 140 * number}" y="{height - 8}" fill="{colour}">'
            f"■ {escape(s.variant[:20])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)

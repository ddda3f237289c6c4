"""The experiment page's view model: what a snapshot says, laid out for reading.

No statistics here: every number comes from the snapshot (``analysis.snapshot``), the
recommendation (``decisions``) or ``analysis.views``.  This module only places them — which
section a metric belongs to, where an interval sits on the table's one shared axis, which
colour and word a result gets — and reads the snapshot's own significance threshold.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from splitlab.analysis.snapshot import HealthCheck, ResultRow, Severity, Snapshot
from splitlab.domain import Engine

SECTIONS = (("primary", "Primary"), ("secondary", "Secondary"), ("guardrail", "Guardrails"))
BAYES_THRESHOLD = 0.95
"""Chance to win at which a Bayesian result reads as a clear win (or 1 − it, a clear loss)."""
SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class MetricInfo:
    key: str
    name: str
    role: str
    kind: str
    higher_is_better: bool


def metric_info(snapshot: Snapshot) -> dict[str, MetricInfo]:
    """Each analysed metric's role, kind and good direction, from the snapshot's settings."""
    out = {}
    for item in snapshot.settings.get("metrics", []):
        definition = item.get("definition", {})
        key = definition.get("key", "")
        out[key] = MetricInfo(
            key=key,
            name=definition.get("name") or key,
            role=item.get("role", "secondary"),
            kind=definition.get("kind", ""),
            higher_is_better=definition.get("direction", "increase") != "decrease",
        )
    return out


def pct(value: float | None, digits: int = 1, sign: bool = True) -> str:
    """A fraction as a percentage (``+3.4%``); an em dash for none."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value * 100:{'+' if sign else ''}.{digits}f}%"


def num(value: float | None, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; an em dash for none."""
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def signed(value: float | None) -> str:
    """A signed number to one decimal (``+3.4``, ``-1.1``); a value that rounds to zero reads
    ``0.0``, never ``-0.0``; an em dash for none."""
    if value is None or not math.isfinite(value):
        return "—"
    text = f"{value:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def count(value: float | None) -> str:
    """A count of units in full with thousands separators (``4,026``), as the rest of the page
    writes them; an em dash for none."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}"


def pvalue(value: float | None) -> str:
    """A p-value as people read it: ``0.012``, ``< 0.001``."""
    if value is None or not math.isfinite(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


@dataclass(frozen=True)
class Axis:
    """The results table's one CI axis (relative effect): its range and tick marks."""

    low: float
    high: float
    ticks: list[tuple[float, str]]

    def at(self, value: float) -> float:
        """Position of ``value`` as a percentage of the axis width (may fall outside 0–100)."""
        return (value - self.low) / (self.high - self.low) * 100.0


def _nice_step(span: float) -> float:
    raw = span / 5.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def shared_axis(rows: list[ResultRow]) -> Axis:
    """One axis for every row's relative-effect interval, zero included, with 10% padding.

    An interval far wider than the others (more than 5× the median width, e.g. a metric with
    a handful of units) would flatten every other bar; the axis then covers the typical
    intervals and that bar runs past the edge, where it fades out."""
    lows = [r.rel_ci_low for r in rows if r.rel_ci_low is not None and math.isfinite(r.rel_ci_low)]
    highs = [
        r.rel_ci_high for r in rows if r.rel_ci_high is not None and math.isfinite(r.rel_ci_high)
    ]
    if not lows or not highs:
        low, high = -0.1, 0.1
    else:
        low, high = min(0.0, *lows), max(0.0, *highs)
        widths = sorted(h - lo for lo, h in zip(lows, highs, strict=False))
        median = widths[len(widths) // 2]
        if median > 0 and high - low > 5 * median * 2:
            reach = 5 * median
            estimates = [r.rel_effect for r in rows if r.rel_effect is not None]
            centre = sorted(estimates)[len(estimates) // 2] if estimates else 0.0
            low, high = min(0.0, centre - reach), max(0.0, centre + reach)
    pad = (high - low) * 0.1 or 0.01
    low, high = low - pad, high + pad
    step = _nice_step(high - low)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-12:
        ticks.append((value, tick_label(value)))
        value += step
    return Axis(low=low, high=high, ticks=ticks)


def tick_label(value: float) -> str:
    """An axis tick as a percentage with the decimals it needs: a tick at 2.5% reads
    ``+2.5%`` (it read ``+2%``, beside ``+5%``), one at 5% reads ``+5%``."""
    if abs(value) < 1e-12:
        return "0"
    percent = value * 100
    for digits in (0, 1, 2):
        if abs(round(percent, digits) - percent) < 1e-9:
            return pct(value, digits)
    return pct(value, 2)


def significant(row: ResultRow, *, engine: Engine, alpha: float) -> bool | None:
    """Whether a result is significant after correction (a clear chance to win or lose, for
    the Bayesian engine); None when there is no valid test."""
    if engine is Engine.BAYESIAN:
        win = row.chance_to_win
        if win is None:
            return None
        return win >= BAYES_THRESHOLD or win <= 1 - BAYES_THRESHOLD
    p = row.p_value_adjusted if row.p_value_adjusted is not None else row.p_value
    if p is None:
        return None
    return p < alpha


def result_view(
    row: ResultRow, info: MetricInfo, axis: Axis, *, engine: Engine, alpha: float
) -> dict[str, Any]:
    """One table row: formatted numbers, bar geometry on ``axis``, colour class and words."""
    sig = significant(row, engine=engine, alpha=alpha)
    effect = row.rel_effect
    good: bool | None = None
    if effect is not None and effect != 0:
        good = (effect > 0) == info.higher_is_better
    arrow = "" if effect is None or effect == 0 else ("↑" if effect > 0 else "↓")
    if row.reason:
        tone, words = "none", f"no test ({row.reason.replace('_', ' ')})"
    elif sig is None:
        tone, words = "none", "no test"
    else:
        tone = "neutral" if good is None else ("good" if good else "bad")
        words = "significant" if sig else "not significant"
    bar: dict[str, Any] | None = None
    if row.rel_ci_low is not None and row.rel_ci_high is not None and effect is not None:
        left, right = axis.at(row.rel_ci_low), axis.at(row.rel_ci_high)
        bar = {
            "left": round(max(left, 0.0), 3),
            "width": round(max(min(right, 100.0) - max(left, 0.0), 0.4), 3),
            "est": round(min(max(axis.at(effect), 0.0), 100.0), 3),
            "past_left": left < 0,
            "past_right": right > 100,
            "est_inside": 0 <= axis.at(effect) <= 100,
        }
    if engine is Engine.BAYESIAN:
        test = "—" if row.chance_to_win is None else f"{row.chance_to_win * 100:.1f}%"
        test_note = "" if row.risk_treatment is None else f"risk {num(row.risk_treatment, 3)}"
    elif row.p_value_adjusted is not None:
        test, test_note = pvalue(row.p_value_adjusted), f"raw {pvalue(row.p_value)}"
    else:
        test, test_note = pvalue(row.p_value), ""
    return {
        "metric": row.metric,
        "name": info.name,
        "variant": row.variant,
        "segment": row.segment.to_json() if row.segment else None,
        "kind": info.kind,
        "higher_is_better": info.higher_is_better,
        "cuped": row.cuped,
        "control_mean": num(row.control_mean),
        "treatment_mean": num(row.treatment_mean),
        "control_n": count(row.control_n),
        "treatment_n": count(row.treatment_n),
        "abs": f"{num(row.abs_effect)} [{num(row.abs_ci_low)}, {num(row.abs_ci_high)}]",
        "rel": pct(effect),
        "rel_ci": f"[{pct(row.rel_ci_low)}, {pct(row.rel_ci_high)}]",
        "test": test,
        "test_note": test_note,
        "arrow": arrow,
        "significant": sig,
        "tone": tone,
        "words": words,
        "direction": ""
        if good is None
        else (("" if sig else "leans ") + ("better" if good else "worse")),
        "bar": bar,
        "raw": row.to_json(),
    }


def results_sections(
    snapshot: Snapshot, rows: list[ResultRow]
) -> tuple[Axis, list[dict[str, Any]]]:
    """The table's sections (primary, secondary, guardrails) with their rows, on one axis."""
    infos = metric_info(snapshot)
    axis = shared_axis(rows)
    alpha = float(snapshot.settings.get("alpha", 0.05))
    sections = []
    for role, title in SECTIONS:
        views = [
            result_view(
                r,
                infos.get(r.metric) or MetricInfo(r.metric, r.metric, role, "", True),
                axis,
                engine=snapshot.engine,
                alpha=alpha,
            )
            for r in rows
            if (infos[r.metric].role if r.metric in infos else "secondary") == role
        ]
        for position, view in enumerate(views):
            same = position > 0 and views[position - 1]["metric"] == view["metric"]
            view["span"] = 0 if same else sum(1 for v in views if v["metric"] == view["metric"])
        if views:
            sections.append({"role": role, "title": title, "rows": views})
    return axis, sections


def settings_pill(snapshot: Snapshot) -> dict[str, Any]:
    """Engine, confidence level, correction, CUPED and sequential, as the page states them."""
    settings = snapshot.settings
    alpha = float(settings.get("alpha", 0.05))
    cuped = [r for r in snapshot.overall() if r.cuped]
    return {
        "engine": snapshot.engine.value,
        "alpha": alpha,
        "confidence": f"{(1 - alpha) * 100:g}%",
        "correction": settings.get("correction", "none"),
        "cuped": bool(cuped),
        "sequential": snapshot.engine is Engine.SEQUENTIAL,
        "relative_ci": settings.get("relative_ci", "delta"),
        "power": settings.get("power"),
        "mde": settings.get("mde"),
    }


def health_view(checks: tuple[HealthCheck, ...] | list[HealthCheck]) -> dict[str, Any]:
    """The checklist, failures first (critical, then warning, then the checks that cannot
    pass yet), and its summary counts."""
    ordered = sorted(
        enumerate(checks),
        key=lambda item: (SEVERITY_ORDER[item[1].severity], not item[1].pending, item[0]),
    )
    items = []
    for position, (_, check) in enumerate(ordered):
        items.append(
            {
                "id": f"check-{position}",
                "check": check.check.value,
                "label": check.check.value.replace("_", " "),
                "severity": check.severity.value,
                "passed": check.severity is Severity.INFO and not check.pending,
                "pending": check.severity is Severity.INFO and check.pending,
                "message": check.message,
                "metric": check.metric,
                "variant": check.variant,
                "value": check.value,
            }
        )
    critical = sum(1 for i in items if i["severity"] == "critical")
    warning = sum(1 for i in items if i["severity"] == "warning")
    pending = sum(1 for i in items if i["pending"])
    return {
        "checks": items,
        "critical": critical,
        "warning": warning,
        "pending": pending,
        "passed": len(items) - critical - warning - pending,
        "state": "critical" if critical else ("warning" if warning else "ok"),
    }


def heatmap(snapshot: Snapshot, *, alpha: float, skip: Collection[str] = ()) -> dict[str, Any]:
    """Segment value × (metric, treatment) cells coloured by effect ÷ SE (the test
    statistic, sign kept), marked where significant after correction.  The tone says
    whether the sign is the metric's good or bad direction. Segments named in ``skip`` (the
    crossed ones, drawn as grids) are left out."""
    infos = metric_info(snapshot)
    segmented = [
        r for r in snapshot.results if r.segment is not None and r.segment.name not in skip
    ]
    columns: list[tuple[str, str]] = []
    rows: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
    for r in segmented:
        assert r.segment is not None
        column = (r.metric, r.variant)
        if column not in columns:
            columns.append(column)
        z = r.statistic
        info = infos.get(r.metric)
        tone = "none"
        if z is not None and math.isfinite(z) and z != 0 and info is not None:
            tone = "good" if (z > 0) == info.higher_is_better else "bad"
        sig = significant(r, engine=snapshot.engine, alpha=alpha)
        strength = 0.0 if z is None or not math.isfinite(z) else min(abs(z) / 4.0, 1.0)
        rows.setdefault((r.segment.name, r.segment.value), {})[column] = {
            "z": None if z is None or not math.isfinite(z) else round(z, 2),
            "z_text": signed(z),
            "tone": tone,
            "strength": round(0.12 + 0.88 * strength, 3),
            "significant": bool(sig),
            "rel": pct(r.rel_effect),
            "rel_ci": f"[{pct(r.rel_ci_low)}, {pct(r.rel_ci_high)}]",
            "n": count((r.control_n or 0) + (r.treatment_n or 0)),
        }
    multi = len({v for _, v in columns}) > 1
    return {
        "columns": [
            {
                "metric": m,
                "variant": v,
                "label": (infos[m].name if m in infos else m) + (f" · {v}" if multi else ""),
            }
            for m, v in columns
        ],
        "rows": [
            {"segment": name, "value": value, "cells": [cells.get(c) for c in columns]}
            for (name, value), cells in rows.items()
        ],
    }


def timeseries(snapshot: Snapshot) -> dict[str, Any]:
    """The cumulative daily points per metric × treatment, as chart series (no new numbers)."""
    infos = metric_info(snapshot)
    series: dict[str, dict[str, Any]] = {}
    for point in snapshot.daily:
        key = f"{point.metric}|{point.variant}"
        entry = series.setdefault(
            key,
            {
                "metric": point.metric,
                "name": infos[point.metric].name if point.metric in infos else point.metric,
                "variant": point.variant,
                "days": [],
                "rel": [],
                "low": [],
                "high": [],
                "p": [],
                "win": [],
            },
        )
        entry["days"].append(point.day.isoformat())
        entry["rel"].append(point.rel_effect)
        entry["low"].append(point.rel_ci_low)
        entry["high"].append(point.rel_ci_high)
        entry["p"].append(point.p_value)
        entry["win"].append(point.chance_to_win)
    return {"series": list(series.values())}

"""The fleet view's program charts — velocity, win rate, rollout timeline — as Plotly figure
specs (plain dicts the page embeds as JSON and ``static/fleet.js`` draws with the bundled
plotly.js). Counts, durations and medians of the audit log's dates; no statistics."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from splitlab.decisions.velocity import Dates, kpis
from splitlab.store.fleet import Transition
from splitlab.web.fleet_model import FleetRow

OUTCOME_COLOURS = {
    "positive": "#0072b2",
    "negative": "#d55e00",
    "neutral": "#8c8c8c",
    "in_progress": "#56b4e9",
}
"""Okabe–Ito: won blue, lost vermillion, grey for no effect, sky blue while in progress."""
OUTCOME_WORDS = {
    "positive": "won ↑",
    "negative": "lost ↓",
    "neutral": "inconclusive",
    "in_progress": "in progress",
}
PHASES = ("draft", "review", "running", "readout", "rollout")
PHASE_OF = {
    "draft": "draft",
    "review": "review",
    "scheduled": "review",
    "running": "running",
    "stopped": "readout",
    "readout": "readout",
    "rolling_out": "rollout",
}
PHASE_OPACITY = {"draft": 0.25, "review": 0.45, "running": 1.0, "readout": 0.7, "rollout": 0.9}
WIN_BAND = (0.15, 0.40)
"""The normal share of winning experiments in mature programs (UI.md)."""
WIN_BAND_NOTE = {
    "xref": "paper",
    "x": 1,
    "xanchor": "right",
    "y": WIN_BAND[1],
    "yanchor": "bottom",
    "text": "normal win rate 15–40%",
    "showarrow": False,
    "font": {"size": 11, "color": "#0b5cad"},
}
"""The label of ``win_band`` at its top right."""
LAYOUT = {
    "margin": {"l": 48, "r": 16, "t": 36, "b": 40},
    "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#1d2330"},
    "paper_bgcolor": "#fff",
    "plot_bgcolor": "#fff",
    "legend": {"orientation": "h", "y": -0.2},
    "hovermode": "closest",
}


def win_band(*, layer: str) -> dict[str, Any]:
    """The shaded 15–40% normal win-rate band across a win-rate chart (``layer``: ``above``
    or ``below`` the bars)."""
    return {
        "type": "rect",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": WIN_BAND[0],
        "y1": WIN_BAND[1],
        "fillcolor": "rgba(0,114,178,0.08)",
        "line": {"width": 1, "dash": "dot", "color": "#0072b2"},
        "layer": layer,
    }


def _month(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def _months(first: datetime, last: datetime) -> list[str]:
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def velocity(
    rows: list[FleetRow], dates: dict[str, Dates], *, since: datetime | None, now: datetime
) -> dict[str, Any]:
    """Launches and completions per month, median run time, win rate by launch month and the
    time from stop to decision; the figures cover at least six months for context, the
    headline numbers the selected period."""
    starts = [d.started for d in dates.values() if d.started is not None]
    first = min(starts, default=now)
    window_start = min(since or first, now - timedelta(days=182))
    months = _months(max(first, window_start) if since else first, now)
    launched: dict[str, int] = defaultdict(int)
    completed: dict[str, int] = defaultdict(int)
    stacks: dict[str, dict[str, int]] = {m: defaultdict(int) for m in months}
    for row in rows:
        d = dates.get(row.key)
        if d is None or d.started is None:
            continue
        launched[_month(d.started)] += 1
        if _month(d.started) in stacks:
            stacks[_month(d.started)][row.kind] += 1
        if d.stopped is not None:
            completed[_month(d.stopped)] += 1
    current = kpis(rows, dates, start=since, end=now)
    previous = None
    if since is not None:
        previous = kpis(rows, dates, start=since - (now - since), end=since)
    launches = {
        "data": [
            {
                "type": "bar",
                "name": "launched",
                "x": months,
                "y": [launched.get(m, 0) for m in months],
                "marker": {"color": "#56b4e9"},
            },
            {
                "type": "bar",
                "name": "completed",
                "x": months,
                "y": [completed.get(m, 0) for m in months],
                "marker": {"color": "#cc79a7"},
            },
        ],
        "layout": LAYOUT
        | {
            "title": {"text": "Launched and completed per month", "font": {"size": 14}},
            "barmode": "group",
            "yaxis": {"title": {"text": "experiments"}, "rangemode": "tozero"},
            "xaxis": {"type": "category"},
        },
    }
    kinds = [
        ("positive", "won"),
        ("negative", "lost"),
        ("neutral", "inconclusive"),
        ("unfinished", "unfinished"),
    ]
    colours = OUTCOME_COLOURS | {"unfinished": "#e4e7ec"}
    totals = {m: sum(stacks[m].values()) for m in months}
    win_rate = {
        "data": [
            {
                "type": "bar",
                "name": word,
                "x": months,
                "y": [stacks[m][kind] / totals[m] if totals[m] else 0 for m in months],
                "customdata": [stacks[m][kind] for m in months],
                "hovertemplate": f"%{{x}}: %{{customdata}} {word} (%{{y:.0%}})<extra></extra>",
                "marker": {
                    "color": colours[kind],
                    "line": {"color": "#5d6778", "width": 0.5 if kind == "unfinished" else 0},
                },
            }
            for kind, word in kinds
        ],
        "layout": LAYOUT
        | {
            "title": {"text": "Outcome by launch month", "font": {"size": 14}},
            "barmode": "stack",
            "yaxis": {"tickformat": ".0%", "range": [0, 1], "title": {"text": "share"}},
            "xaxis": {"type": "category"},
            "shapes": [win_band(layer="above")],
            "annotations": [WIN_BAND_NOTE],
        },
    }
    return {
        "months": months,
        "launched": [launched.get(m, 0) for m in months],
        "completed": [completed.get(m, 0) for m in months],
        **current,
        "previous": previous,
        "figures": {"launches": launches, "win_rate": win_rate},
    }


def phases(moves: list[Transition], now: datetime) -> list[tuple[str, datetime, datetime]]:
    """The experiment's phases (draft → review → running → readout → rollout) as
    (phase, start, end), consecutive moves within one phase merged."""
    spans: list[tuple[str, datetime, datetime]] = []
    current: tuple[str, datetime] | None = None
    for move in moves:
        phase = PHASE_OF.get(move.to_status)
        if current is not None and (phase != current[0]):
            spans.append((current[0], current[1], move.at))
            current = None
        if phase is not None and current is None:
            current = (phase, move.at)
    if current is not None:
        spans.append((current[0], current[1], max(now, current[1])))
    return spans


def timeline(
    rows: list[FleetRow], moves: dict[str, list[Transition]], *, now: datetime, limit: int = 40
) -> dict[str, Any]:
    """A Gantt chart of the ``limit`` most recently updated experiments' phases, coloured by
    outcome, the rollout percentage on rollout bars and a line at today."""
    shown = sorted(rows, key=lambda r: r.experiment.updated_at, reverse=True)[:limit]
    shown.reverse()  # newest at the top of the chart
    traces = []
    for phase in PHASES:
        x, base, y, colours, text, hover = [], [], [], [], [], []
        for row in shown:
            for name, start, end in phases(moves.get(row.key, []), now):
                if name != phase:
                    continue
                x.append(max(1.0, (end - start).total_seconds() * 1000))
                base.append(start.isoformat())
                y.append(row.key)
                colours.append(OUTCOME_COLOURS[row.outcome])
                label = ""
                if phase == "rollout" and row.rollout is not None:
                    label = f"{row.rollout:g}%"
                text.append(label)
                hover.append(
                    f"{row.key} · {phase}<br>{start:%Y-%m-%d} → {end:%Y-%m-%d}"
                    f"<br>{OUTCOME_WORDS[row.outcome]}" + (f" · rollout {label}" if label else "")
                )
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": phase,
                "x": x,
                "base": base,
                "y": y,
                "text": text,
                "textposition": "inside",
                "hovertext": hover,
                "hoverinfo": "text",
                "opacity": PHASE_OPACITY[phase],
                "marker": {
                    "color": colours,
                    "pattern": {"shape": "/" if phase == "rollout" else ""},
                    "line": {"color": "#1d2330", "width": 0.5},
                },
            }
        )
    height = max(220, 26 * len(shown) + 110)
    figure = {
        "data": traces,
        "layout": LAYOUT
        | {
            "title": {"text": "Rollout timeline", "font": {"size": 14}},
            "barmode": "overlay",
            "height": height,
            "margin": {"l": 170, "r": 16, "t": 36, "b": 40},
            "xaxis": {"type": "date"},
            "yaxis": {"type": "category", "automargin": True},
            "legend": {
                "orientation": "h",
                "y": 1.02,
                "yanchor": "bottom",
                "x": 1,
                "xanchor": "right",
            },
            "shapes": [
                {
                    "type": "line",
                    "xref": "x",
                    "x0": now.isoformat(),
                    "x1": now.isoformat(),
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#1d2330", "width": 1.5, "dash": "dash"},
                }
            ],
            "annotations": [
                {
                    "xref": "x",
                    "x": now.isoformat(),
                    "yref": "paper",
                    "y": 1,
                    "yanchor": "bottom",
                    "text": "today",
                    "showarrow": False,
                    "font": {"size": 11},
                }
            ],
        },
    }
    return {"shown": [r.key for r in reversed(shown)], "total": len(rows), "figure": figure}

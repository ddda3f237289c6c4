"""The program views' charts as Plotly figure specs (plain dicts the page embeds as JSON and
``static/program.js`` draws with the bundled plotly.js). Layout only: every number comes from
``decisions.program_views`` or the fleet's velocity counts."""

from __future__ import annotations

from typing import Any

from splitlab.web.fleet_charts import LAYOUT, WIN_BAND_NOTE, win_band

VERDICT_COLOURS = {
    "won": "#0072b2",
    "lost": "#d55e00",
    "inconclusive": "#8c8c8c",
    "no_result": "#c0c4cc",
}
"""Okabe–Ito, as the fleet view: won blue, lost vermillion, grey for no effect."""
VERDICT_WORDS = {
    "won": "won ↑",
    "lost": "lost ↓",
    "inconclusive": "inconclusive",
    "no_result": "no result",
}
TITLE = {"font": {"size": 14}}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f}%"


def _benefit(value: float | None, lift: bool) -> str:
    if value is None:
        return "—"
    return _pct(value) if lift else f"{value:,.0f} per day"


def _share(kpis: dict[str, Any]) -> str:
    decided = kpis["won"] + kpis["lost"] + kpis["inconclusive"]
    if not decided:
        return "none decided"
    return f"{kpis['win_rate'] * 100:.0f}% ({kpis['won']}/{decided})"


def _title(text: str) -> dict[str, Any]:
    return {"text": text} | TITLE


def _hline(y: float, *, dash: str = "dash", colour: str = "#5d6778") -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "yref": "y",
        "y0": y,
        "y1": y,
        "line": {"color": colour, "width": 1, "dash": dash},
    }


def cost_benefit(data: dict[str, Any]) -> dict[str, Any]:
    """Bubbles: total cost against benefit, size = confidence, filled when shipped, with the
    benefit's interval, the median-cost and zero lines and the four quadrants named."""
    lift = data["benefit"] == "lift"
    scale = 100.0 if lift else 1.0
    traces = []
    for verdict, colour in VERDICT_COLOURS.items():
        points = [p for p in data["points"] if p["verdict"] == verdict]
        if not points:
            continue
        y = [p["benefit"] * scale for p in points]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": VERDICT_WORDS[verdict],
                "x": [p["cost"] for p in points],
                "y": y,
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        (p["benefit_high"] * scale - v) if p["benefit_high"] is not None else 0
                        for p, v in zip(points, y, strict=True)
                    ],
                    "arrayminus": [
                        (v - p["benefit_low"] * scale) if p["benefit_low"] is not None else 0
                        for p, v in zip(points, y, strict=True)
                    ],
                    "color": colour,
                    "thickness": 1,
                    "width": 0,
                },
                "marker": {
                    "color": colour,
                    "size": [8 + 28 * (p["confidence"] or 0) for p in points],
                    "symbol": [
                        "circle" if p["status"] in ("shipped", "rolling_out") else "circle-open"
                        for p in points
                    ],
                    "line": {"color": colour, "width": 2},
                    "opacity": 0.85,
                },
                "text": [p["key"] for p in points],
                "hovertext": [
                    f"{p['name']} ({p['status'].replace('_', ' ')})<br>cost {p['cost']:,.0f}"
                    f" (engineering {p['engineering_cost']:,.0f} + run {p['run_cost']:,.0f})"
                    f"<br>benefit {_benefit(p['benefit'], lift)}"
                    f"<br>confidence {(p['confidence'] or 0) * 100:.0f}% · {p['quadrant']}"
                    for p in points
                ],
                "hoverinfo": "text",
            }
        )
    split = data["cost_split"]
    corner = {"showarrow": False, "font": {"size": 12, "color": "#5d6778"}, "xref": "paper"}
    annotations = [
        corner | {"x": 0.01, "xanchor": "left", "yref": "paper", "y": 0.99, "text": "quick wins"},
        corner
        | {"x": 0.99, "xanchor": "right", "yref": "paper", "y": 0.99, "text": "strategic bets"},
        corner
        | {"x": 0.01, "xanchor": "left", "yref": "paper", "y": 0.01, "text": "cheap lessons"},
        corner
        | {"x": 0.99, "xanchor": "right", "yref": "paper", "y": 0.01, "text": "costly lessons"},
    ]
    currency = data.get("currency") or ""
    return {
        "data": traces,
        "layout": LAYOUT
        | {
            "title": _title("Cost against measured benefit"),
            "xaxis": {
                "title": {"text": f"total cost {currency}".strip()},
                "rangemode": "tozero",
                "zeroline": False,
                "tickformat": ",.0f",
            },
            "yaxis": {
                "title": {"text": "primary-metric lift (%)" if lift else "value per day"},
                "ticksuffix": "%" if lift else "",
                "zeroline": False,
            },
            "shapes": [
                _hline(0),
                {
                    "type": "line",
                    "xref": "x",
                    "x0": split,
                    "x1": split,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#5d6778", "width": 1, "dash": "dot"},
                },
            ],
            "annotations": annotations,
        },
    }


def reliability(data: dict[str, Any]) -> dict[str, Any]:
    """The reliability diagram: observed win frequency per forecast bin (with its Wilson
    interval) against the diagonal of perfect calibration."""
    bins = [b for b in data["calibration"]["bins"] if b["n"]]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "perfect calibration",
                "x": [0, 1],
                "y": [0, 1],
                "line": {"color": "#8c8c8c", "dash": "dash", "width": 1},
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "your forecasts",
                "x": [b["mean_forecast"] for b in bins],
                "y": [b["observed"] for b in bins],
                "text": [f"n={b['n']}" for b in bins],
                "textposition": "middle right",
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [b["observed_high"] - b["observed"] for b in bins],
                    "arrayminus": [b["observed"] - b["observed_low"] for b in bins],
                    "color": "#0072b2",
                    "thickness": 1,
                },
                "marker": {"color": "#0072b2", "size": [8 + 3 * b["n"] ** 0.5 for b in bins]},
                "hovertemplate": "forecast %{x:.0%} → won %{y:.0%}<extra></extra>",
            },
        ],
        "layout": LAYOUT
        | {
            "title": _title("Reliability: forecast against outcome"),
            "legend": {"x": 0.02, "y": 0.98, "bgcolor": "rgba(255,255,255,0.8)"},
            "xaxis": {
                "title": {"text": "stated chance to win"},
                "range": [-0.02, 1.02],
                "dtick": 0.2,
                "tickformat": ".0%",
            },
            "yaxis": {
                "title": {"text": "share that won"},
                "range": [-0.05, 1.05],
                "tickformat": ".0%",
            },
        },
    }


def brier_over_time(data: dict[str, Any]) -> dict[str, Any]:
    """The Brier score per period of decision, with the score of always saying 50%."""
    points = data["calibration"]["over_time"]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Brier score",
                "x": [p["period"] for p in points],
                "y": [p["brier"] for p in points],
                "customdata": [p["n"] for p in points],
                "hovertemplate": "%{x}: %{y:.3f} over %{customdata} forecasts<extra></extra>",
                "line": {"color": "#0072b2"},
            }
        ],
        "layout": LAYOUT
        | {
            "title": _title("Brier score over time (lower is better)"),
            "xaxis": {"type": "category"},
            "yaxis": {"title": {"text": "Brier score"}, "rangemode": "tozero"},
            "shapes": [_hline(0.25)],
            "annotations": [
                {
                    "xref": "paper",
                    "x": 1,
                    "xanchor": "right",
                    "y": 0.25,
                    "yanchor": "bottom",
                    "text": "always 50%",
                    "showarrow": False,
                    "font": {"size": 11, "color": "#5d6778"},
                }
            ],
        },
    }


def cumulative(data: dict[str, Any]) -> dict[str, Any]:
    """Cumulative lift of the shipped changes over time: the raw sum with its 95% ribbon and
    the James–Stein-shrunk sum."""
    changes = data["changes"]
    x = [c["decided_at"] for c in changes]
    raw = [c["cumulative_raw"] * 100 for c in changes]
    se = [c["cumulative_raw_se"] * 100 * 1.959963984540054 for c in changes]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": [r + s for r, s in zip(raw, se, strict=True)],
                "line": {"width": 0, "shape": "hv"},
                "hoverinfo": "skip",
                "showlegend": False,
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "raw sum, 95% CI",
                "x": x,
                "y": [r - s for r, s in zip(raw, se, strict=True)],
                "fill": "tonexty",
                "fillcolor": "rgba(213,94,0,0.12)",
                "line": {"width": 0, "shape": "hv"},
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "raw sum",
                "x": x,
                "y": raw,
                "line": {"color": "#d55e00", "shape": "hv"},
                "text": [c["key"] for c in changes],
                "hovertemplate": "%{text}<br>raw total %{y:.1f}%<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "shrunk (James–Stein)",
                "x": x,
                "y": [c["cumulative_shrunk"] * 100 for c in changes],
                "line": {"color": "#0072b2", "shape": "hv", "width": 3},
                "text": [c["key"] for c in changes],
                "hovertemplate": "%{text}<br>shrunk total %{y:.1f}%<extra></extra>",
            },
        ],
        "layout": LAYOUT
        | {
            "title": _title("Cumulative improvement of the shipped changes"),
            "xaxis": {"type": "date"},
            "yaxis": {"title": {"text": "sum of primary-metric lifts"}, "ticksuffix": "%"},
            "shapes": [_hline(0)],
        },
    }


def forest(data: dict[str, Any]) -> dict[str, Any]:
    """Each shipped change: its measured lift with the 95% interval and its shrunk estimate."""
    changes = list(reversed(data["changes"]))  # newest on top
    keys = [c["key"] for c in changes]
    raw = [c["lift"] * 100 for c in changes]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "name": "measured, 95% CI",
                "x": raw,
                "y": keys,
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [
                        (c["ci_high"] * 100 - r) if c["ci_high"] is not None else 0
                        for c, r in zip(changes, raw, strict=True)
                    ],
                    "arrayminus": [
                        (r - c["ci_low"] * 100) if c["ci_low"] is not None else 0
                        for c, r in zip(changes, raw, strict=True)
                    ],
                    "color": "#d55e00",
                    "thickness": 1.5,
                },
                "marker": {"color": "#d55e00", "size": 9},
                "hovertemplate": "%{y}: measured %{x:.1f}%<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "name": "shrunk",
                "x": [c["shrunk_lift"] * 100 for c in changes],
                "y": keys,
                "marker": {"color": "#0072b2", "size": 11, "symbol": "diamond"},
                "hovertemplate": "%{y}: shrunk %{x:.1f}%<extra></extra>",
            },
        ],
        "layout": LAYOUT
        | {
            "title": _title("Each shipped change: measured and shrunk"),
            "height": max(240, 34 * len(keys) + 120),
            "margin": {"l": 170, "r": 16, "t": 36, "b": 40},
            "xaxis": {"ticksuffix": "%", "zeroline": True, "zerolinecolor": "#5d6778"},
            "yaxis": {"type": "category", "automargin": True},
        },
    }


def figures(view: str, data: dict[str, Any]) -> dict[str, Any]:
    """The figures of one program view."""
    if view == "cost-benefit":
        return {"cost_benefit": cost_benefit(data)}
    if view == "tracker":
        return {"reliability": reliability(data), "brier": brier_over_time(data)}
    return {"cumulative": cumulative(data), "forest": forest(data)}


def velocity_figures(data: dict[str, Any]) -> dict[str, Any]:
    """Win rate per team for the period (solid) over the period before (faded, behind) with
    the 15–40% reference band, and launches per team per month."""
    teams = [t["team"] for t in data["teams"]]
    win_rate = {
        "data": [
            {
                "type": "bar",
                "name": "previous period",
                "x": teams,
                "y": [t["previous"]["win_rate"] for t in data["teams"]],
                "marker": {"color": "rgba(0,114,178,0.25)"},
                "width": 0.7,
                "hovertemplate": "%{x}, previous period: %{y:.0%}<extra></extra>",
            },
            {
                "type": "bar",
                "name": "this period",
                "x": teams,
                "y": [t["current"]["win_rate"] for t in data["teams"]],
                "text": [_share(t["current"]) for t in data["teams"]],
                "textposition": "outside",
                "cliponaxis": False,
                "marker": {"color": "#0072b2"},
                "width": 0.4,
                "hovertemplate": "%{x}, this period: %{y:.0%}<extra></extra>",
            },
        ],
        "layout": LAYOUT
        | {
            "title": _title("Win rate by team: this period over the previous one"),
            "barmode": "overlay",
            "yaxis": {"tickformat": ".0%", "range": [0, 1], "title": {"text": "win rate"}},
            "shapes": [win_band(layer="below")],
            "annotations": [WIN_BAND_NOTE],
        },
    }
    palette = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442"]
    launches = {
        "data": [
            {
                "type": "bar",
                "name": t["team"],
                "x": [m["month"] for m in t["months"]],
                "y": [m["launched"] for m in t["months"]],
                "marker": {"color": palette[i % len(palette)]},
            }
            for i, t in enumerate(data["teams"])
        ],
        "layout": LAYOUT
        | {
            "title": _title("Launched per team per month"),
            "barmode": "stack",
            "xaxis": {"type": "category"},
            "yaxis": {"title": {"text": "experiments"}, "rangemode": "tozero"},
        },
    }
    return {"win_rate": win_rate, "launches": launches}

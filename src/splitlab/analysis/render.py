"""Plain-text and Markdown renderings of a snapshot (for the CLI and reports)."""

from __future__ import annotations

from typing import Any

SEVERITY_MARK = {"info": "ok", "warning": "WARN", "critical": "CRIT"}


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2%}"


def _mean(r: dict[str, Any], arm: str) -> str:
    """An arm's mean and n; with CUPED the raw mean, then the adjusted one the effect uses."""
    n = r.get(f"{arm}_n")
    text = _num(r[f"{arm}_mean"]) + ("" if n is None else f" (n={n:,.0f})")
    if f"{arm}_mean_adjusted" in r:
        text += f" adj {_num(r[f'{arm}_mean_adjusted'])}"
    return text


def _rows(snapshot: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    bayesian = snapshot["engine"] == "bayesian"
    header = ["metric", "variant", "segment", "control", "treatment", "effect", "CI"]
    header += ["chance to win", "risk"] if bayesian else ["p", "p adj"]
    rows = []
    for r in snapshot["results"]:
        segment = r["segment"]
        row = [
            r["metric"] + (" (CUPED)" if "control_mean_adjusted" in r else ""),
            r["variant"],
            "all" if segment is None else f"{segment['name']}={segment['value']}",
            _mean(r, "control"),
            _mean(r, "treatment"),
            _pct(r["rel_effect"]),
            f"[{_pct(r['rel_ci_low'])}, {_pct(r['rel_ci_high'])}]",
        ]
        if bayesian:
            row += [_num(r.get("chance_to_win"), 3), _num(r.get("risk_treatment"), 3)]
        else:
            row += [_num(r["p_value"], 3), _num(r.get("p_value_adjusted"), 3)]
        if r["reason"]:
            row[5] = f"({r['reason']})"
        rows.append(row)
    return header, rows


def _summary(snapshot: dict[str, Any]) -> str:
    units = ", ".join(f"{u['variant']} {u['n']:,}" for u in snapshot["units"])
    cached = " (cached)" if snapshot.get("cached") else ""
    mark = snapshot["watermark"]
    last = mark.get("last_ingested_at")
    data = f"{mark['exposures']:,} exposures, {mark['events']:,} events in the warehouse" + (
        f", last ingested {last[:19].replace('T', ' ')} UTC" if last else ""
    )
    return (
        f"{snapshot['experiment']}: {snapshot['engine']} analysis of {units} units; {data}{cached}"
    )


def _subject(check: dict[str, Any]) -> str:
    """`` (metric, variant)`` for a check about one metric or variant, else nothing."""
    about = [check[k] for k in ("metric", "variant") if check.get(k)]
    return f" ({', '.join(about)})" if about else ""


CUPED_NOTE = (
    "(CUPED): control and treatment show the raw mean and n of each arm, then the mean "
    "adjusted for the pre-period covariate; the effect and CI compare the adjusted means."
)


def _notes(snapshot: dict[str, Any]) -> list[str]:
    return [CUPED_NOTE] if any("control_mean_adjusted" in r for r in snapshot["results"]) else []


HEADLINE_CHECKS = ("bayesian_horizon",)
"""Checks whose warning is shown above the results, not only in the health list: they change
how every number in the table may be read."""


def _headlines(snapshot: dict[str, Any]) -> list[str]:
    return [
        f"WARNING: {c['message']}"
        for c in snapshot["health"]
        if c["check"] in HEADLINE_CHECKS and c["severity"] != "info"
    ]


def render_table(snapshot: dict[str, Any]) -> str:
    """A fixed-width text table of results followed by the health checks."""
    header, rows = _rows(snapshot)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [_summary(snapshot), *_headlines(snapshot), ""]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += _notes(snapshot)
    lines += ["", "Health"]
    for check in snapshot["health"]:
        mark = SEVERITY_MARK.get(check["severity"], check["severity"])
        lines.append(f"  [{mark:>4}] {check['check']}{_subject(check)}: {check['message']}")
    return "\n".join(lines) + "\n"


def render_markdown(snapshot: dict[str, Any]) -> str:
    """The same content as a Markdown document."""
    header, rows = _rows(snapshot)
    lines = [f"## {snapshot['experiment']}", "", _summary(snapshot), ""]
    lines += [f"> **{line}**" for line in _headlines(snapshot)] + [""] * bool(_headlines(snapshot))
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", *_notes(snapshot)] if _notes(snapshot) else []
    lines += ["", "### Health", ""]
    lines += [
        f"- **{c['severity']}** `{c['check']}`{_subject(c)} — {c['message']}"
        for c in snapshot["health"]
    ]
    return "\n".join(lines) + "\n"

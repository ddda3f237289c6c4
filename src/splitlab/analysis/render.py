"""Plain-text and Markdown renderings of a snapshot (for the CLI and reports)."""

from __future__ import annotations

from splitlab.analysis.snapshot import (
    CheckName,
    Comparison,
    HealthCheck,
    ResultRow,
    Severity,
    Snapshot,
)
from splitlab.domain import Engine

SEVERITY_MARK = {Severity.INFO: "ok", Severity.WARNING: "WARN", Severity.CRITICAL: "CRIT"}


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2%}"


def _mean(n: float | None, mean: float | None, adjusted: float | None, cuped: bool) -> str:
    """An arm's mean and n; with CUPED the raw mean, then the adjusted one the effect uses."""
    text = _num(mean) + ("" if n is None else f" (n={n:,.0f})")
    if cuped:
        text += f" adj {_num(adjusted)}"
    return text


def _arms(r: Comparison) -> tuple[str, str]:
    return (
        _mean(r.control_n, r.control_mean, r.control_mean_adjusted, r.cuped),
        _mean(r.treatment_n, r.treatment_mean, r.treatment_mean_adjusted, r.cuped),
    )


def _row(r: ResultRow, bayesian: bool) -> list[str]:
    segment = r.segment
    row = [
        r.metric + (" (CUPED)" if r.cuped else ""),
        r.variant,
        "all" if segment is None else f"{segment.name}={segment.value}",
        *_arms(r),
        _pct(r.rel_effect),
        f"[{_pct(r.rel_ci_low)}, {_pct(r.rel_ci_high)}]",
    ]
    if bayesian:
        row += [_num(r.chance_to_win, 3), _num(r.risk_treatment, 3)]
    else:
        row += [_num(r.p_value, 3), _num(r.p_value_adjusted, 3)]
    if r.reason:
        row[5] = f"({r.reason})"
    return row


def _rows(snapshot: Snapshot) -> tuple[list[str], list[list[str]]]:
    bayesian = snapshot.engine is Engine.BAYESIAN
    header = ["metric", "variant", "segment", "control", "treatment", "effect", "CI"]
    header += ["chance to win", "risk"] if bayesian else ["p", "p adj"]
    return header, [_row(r, bayesian) for r in snapshot.results]


def results_table(snapshot: Snapshot) -> tuple[list[str], list[list[str]]]:
    """The results as a header and rows of text cells, as the text and Markdown readouts
    show them (for other renderings: HTML and PDF reports)."""
    return _rows(snapshot)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table; a ``|`` inside a cell is escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]


def _summary(snapshot: Snapshot) -> str:
    units = ", ".join(f"{u.variant} {u.n:,}" for u in snapshot.units)
    cached = " (cached)" if snapshot.cached else ""
    mark = snapshot.watermark
    last = mark.last_ingested_at
    data = f"{mark.exposures:,} exposures, {mark.events:,} events in the warehouse" + (
        f", last ingested {last:%Y-%m-%d %H:%M:%S} UTC" if last else ""
    )
    return f"{snapshot.experiment}: {snapshot.engine} analysis of {units} units; {data}{cached}"


def _subject(check: HealthCheck) -> str:
    """`` (metric, variant)`` for a check about one metric or variant, else nothing."""
    about = [name for name in (check.metric, check.variant) if name]
    return f" ({', '.join(about)})" if about else ""


CUPED_NOTE = (
    "(CUPED): control and treatment show the raw mean and n of each arm, then the mean "
    "adjusted for the pre-period covariate; the effect and CI compare the adjusted means."
)


def _population(snapshot: Snapshot) -> list[str]:
    """With a trigger: whose results these are, and the assigned population beside them."""
    population = snapshot.population
    if population is None:
        return []
    counts = ", ".join(f"{u.variant} {u.triggered:,} of {u.assigned:,}" for u in population.units)
    lines = [
        f"Triggered population (reached {population.trigger.get('event')!r} after exposure, "
        f"counted from then): {counts} assigned units; SRM p {_num(population.srm_p_triggered)} "
        f"triggered, {_num(population.srm_p_assigned)} assigned."
    ]
    for r in population.assigned_results:
        lines.append(
            f"  assigned population, {r.metric} {r.variant}: effect {_num(r.abs_effect)} "
            f"[{_num(r.abs_ci_low)}, {_num(r.abs_ci_high)}], p {_num(r.p_value)}"
        )
    return lines


def _notes(snapshot: Snapshot) -> list[str]:
    cuped = [CUPED_NOTE] if any(r.cuped for r in snapshot.results) else []
    return cuped + _population(snapshot)


HEADLINE_CHECKS = (CheckName.BAYESIAN_HORIZON,)
"""Checks whose warning is shown above the results, not only in the health list: they change
how every number in the table may be read."""


def _headlines(snapshot: Snapshot) -> list[str]:
    exploratory = (
        [
            f"EXPLORATORY breakdown by {', '.join(snapshot.breakdown.dimensions)}: "
            f"{snapshot.breakdown.note}"
        ]
        if snapshot.breakdown is not None
        else []
    )
    return exploratory + [
        f"WARNING: {c.message}"
        for c in snapshot.health
        if c.check in HEADLINE_CHECKS and c.severity is not Severity.INFO
    ]


def render_table(snapshot: Snapshot) -> str:
    """A fixed-width text table of results followed by the health checks."""
    header, rows = _rows(snapshot)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [_summary(snapshot), *_headlines(snapshot), ""]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += _notes(snapshot)
    lines += ["", "Health"]
    for check in snapshot.health:
        mark = "open" if check.pending else SEVERITY_MARK[check.severity]
        lines.append(f"  [{mark:>4}] {check.check}{_subject(check)}: {check.message}")
    return "\n".join(lines) + "\n"


def render_markdown(snapshot: Snapshot) -> str:
    """The same content as a Markdown document."""
    header, rows = _rows(snapshot)
    lines = [f"## {snapshot.experiment}", "", _summary(snapshot), ""]
    lines += [f"> **{line}**" for line in _headlines(snapshot)] + [""] * bool(_headlines(snapshot))
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", *_notes(snapshot)] if _notes(snapshot) else []
    lines += ["", "### Health", ""]
    lines += [f"- **{c.severity}** `{c.check}`{_subject(c)} — {c.message}" for c in snapshot.health]
    return "\n".join(lines) + "\n"

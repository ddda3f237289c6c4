"""Report exports of one experiment: Markdown, self-contained HTML, PDF, JSON and CSV.

``render_report(snapshot=…, recommendation=…, spec=…, format=…)`` is pure (the same inputs
give the same bytes); ``experiment_report(services=…, key=…, format=…)`` loads the inputs for
an experiment — its newest snapshot, the recommendation made from it, its spec — and renders
them.  The HTML carries its charts as inline SVG and its styles inline: it opens offline and
names no external resource.  The PDF is made by fpdf2, offline (``decisions.report_pdf``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from html import escape
from typing import TYPE_CHECKING, Any

from splitlab.analysis.render import markdown_table, results_table
from splitlab.analysis.service import latest
from splitlab.analysis.snapshot import Snapshot
from splitlab.decisions.charts import daily_series, daily_svg, forest, forest_svg, primary_metric
from splitlab.decisions.llm import LLMReadout, llm_readout, with_summary
from splitlab.decisions.readout import Readout, build_readout, metric_infos
from splitlab.decisions.recommendation import Recommendation
from splitlab.decisions.service import recommend_experiment
from splitlab.domain import ExperimentSpec
from splitlab.errors import ConflictError
from splitlab.store.experiments import get_experiment, spec_from_row

if TYPE_CHECKING:
    from splitlab.services import Services


class ReportFormat(StrEnum):
    """The export formats."""

    MD = "md"
    HTML = "html"
    PDF = "pdf"
    JSON = "json"
    CSV = "csv"


MEDIA_TYPES = {
    ReportFormat.MD: "text/markdown; charset=utf-8",
    ReportFormat.HTML: "text/html; charset=utf-8",
    ReportFormat.PDF: "application/pdf",
    ReportFormat.JSON: "application/json",
    ReportFormat.CSV: "text/csv; charset=utf-8",
}
"""The media type each format is served with."""

CSV_COLUMNS = (
    "experiment",
    "snapshot_id",
    "metric",
    "metric_name",
    "role",
    "direction",
    "variant",
    "segment_name",
    "segment_value",
    "engine",
    "control_n",
    "treatment_n",
    "control_mean",
    "treatment_mean",
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "rel_effect",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "p_value_adjusted",
    "chance_to_win",
    "risk_treatment",
    "power",
    "reason",
)
"""The CSV's columns: one row per metric × variant × segment (empty segment: overall)."""


@dataclass(frozen=True)
class ReportInputs:
    """What a report is made of."""

    snapshot: Snapshot
    recommendation: Recommendation
    spec: ExperimentSpec | None


def filename(key: str, format: ReportFormat | str) -> str:
    """The download name of a report: ``{key}-report.{format}``."""
    return f"{key}-report.{ReportFormat(format).value}"


def render_report(
    *,
    snapshot: Snapshot,
    recommendation: Recommendation,
    spec: ExperimentSpec | None,
    format: ReportFormat | str,
    llm: LLMReadout | None = None,
) -> bytes:
    """The report of ``snapshot`` under ``recommendation`` in ``format`` (md, html, pdf,
    json, csv).  ``llm``: a model's readout (``decisions.llm``), shown first when the model
    answered; the JSON report says which readout it carries either way."""
    kind = ReportFormat(format)
    readout = build_readout(snapshot=snapshot, recommendation=recommendation, spec=spec)
    if llm is not None:
        readout = with_summary(readout, llm)
    if kind is ReportFormat.MD:
        return markdown_report(snapshot, recommendation, readout).encode()
    if kind is ReportFormat.HTML:
        return html_report(snapshot, recommendation, readout).encode()
    if kind is ReportFormat.JSON:
        return json_report(snapshot, recommendation, readout, llm=llm).encode()
    if kind is ReportFormat.CSV:
        return csv_report(snapshot).encode()
    from splitlab.decisions.report_pdf import pdf_report

    return pdf_report(snapshot, recommendation, readout)


def _facts(snapshot: Snapshot, recommendation: Recommendation) -> list[tuple[str, str]]:
    """The small table of identifying facts every report shows."""
    settings = snapshot.settings
    return [
        ("Experiment", snapshot.experiment),
        ("Snapshot", f"{snapshot.snapshot_id if snapshot.snapshot_id is not None else 'unsaved'}"),
        ("Analysed at", f"{snapshot.created_at:%Y-%m-%d %H:%M} UTC"),
        ("Engine", str(snapshot.engine.value)),
        ("Alpha", f"{settings.get('alpha', 0.05)}"),
        ("Correction", str(settings.get("correction", ""))),
        ("Units", ", ".join(f"{u.variant} {u.n:,}" for u in snapshot.units)),
        ("Recommendation", f"{recommendation.code.value} ({recommendation.label})"),
        ("Policy", recommendation.policy),
    ]


def markdown_report(snapshot: Snapshot, recommendation: Recommendation, readout: Readout) -> str:
    """The readout, the identifying facts and the results table, in Markdown."""
    lines = [readout.to_markdown(level=1).rstrip(), "", "## Facts", ""]
    lines += markdown_table(
        ["", ""], [[name, value] for name, value in _facts(snapshot, recommendation)]
    )
    header, rows = results_table(snapshot)
    lines += ["", "## Results", "", *markdown_table(header, rows)]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> Any:
    """A JSON-safe number (non-finite as null)."""
    return value if value is None or math.isfinite(value) else None


def json_report(
    snapshot: Snapshot,
    recommendation: Recommendation,
    readout: Readout,
    *,
    llm: LLMReadout | None = None,
) -> str:
    """Snapshot (results, health, daily), recommendation (code, reasons, evidence, …) and
    readout as one JSON document; ``readout_source`` says whether a model wrote part of it."""
    document: dict[str, Any] = {
        "experiment": snapshot.experiment,
        "snapshot": snapshot.to_json(),
        "recommendation": recommendation.to_json(),
        "readout": readout.to_json(),
        "readout_source": "deterministic" if llm is None else llm.source,
    }
    if llm is not None:
        document["llm"] = llm.model_dump(mode="json", exclude={"text"})
    return json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these is read as a formula by spreadsheets."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, int):
        return str(value)
    text = str(value)
    # text from the data (a segment value, a metric name) must not run as a spreadsheet
    # formula: it is quoted with a leading apostrophe, as OWASP advises
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_report(snapshot: Snapshot) -> str:
    """One CSV row per metric × variant × segment, floats written exactly (``repr``); a text
    cell that a spreadsheet would run as a formula (``=…``, ``+…``, ``-…``, ``@…``) starts
    with an apostrophe."""
    infos = metric_infos(snapshot)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in snapshot.results:
        info = infos[row.metric]
        values = {
            "experiment": snapshot.experiment,
            "snapshot_id": snapshot.snapshot_id,
            "metric_name": info.name,
            "role": info.role.value,
            "direction": info.direction.value,
            "segment_name": row.segment.name if row.segment else None,
            "segment_value": row.segment.value if row.segment else None,
            "engine": row.engine.value,
        }
        writer.writerow([_cell(values[c] if c in values else getattr(row, c)) for c in CSV_COLUMNS])
    return out.getvalue()


STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
max-width:60rem;margin:2rem auto;padding:0 1rem;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #e4e7ec;padding-bottom:.2rem}
.headline{padding:.7rem 1rem;border-radius:6px;font-weight:600}
.good{background:#e5f1f9;color:#0072b2}.bad{background:#fbeee5;color:#b84700}
.neutral{background:#f2f4f7;color:#1d2330}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e4e7ec;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{color:#5d6778;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0}svg{max-width:100%;height:auto}
.muted{color:#5d6778}
@media print{body{margin:0}h2{break-after:avoid}}
"""
TONE = {
    "SHIP_GLOBAL": "good",
    "SHIP_TARGETED_SEGMENTS": "good",
    "KILL": "bad",
    "ROLLBACK": "bad",
    "HOLD_GUARDRAIL_RISK": "bad",
    "INVESTIGATE_INVALID_EXPERIMENT": "bad",
}
"""The headline's colour per recommendation code (others: neutral)."""


def _html_section(readout: Readout) -> list[str]:
    parts = []
    for section in readout.sections:
        parts.append(f'<section id="{escape(section.key)}"><h2>{escape(section.title)}</h2>')
        parts += [f"<p>{escape(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            parts.append(
                "<ul>" + "".join(f"<li>{escape(b)}</li>" for b in section.bullets) + "</ul>"
            )
        parts.append("</section>")
    return parts


def _html_table(header: list[str], rows: list[list[str]], *, numeric_from: int = 99) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_report(snapshot: Snapshot, recommendation: Recommendation, readout: Readout) -> str:
    """One self-contained HTML page: styles inline, charts as inline SVG, no script and no
    external resource."""
    tone = TONE.get(recommendation.code.value, "neutral")
    primary = primary_metric(snapshot)
    charts = [forest_svg(forest(snapshot), title="Relative effect with CI, every metric")]
    if primary is not None:
        charts.append(
            daily_svg(
                daily_series(snapshot, primary.key),
                title=f"{primary.name}: cumulative relative effect by day",
            )
        )
    header, rows = results_table(snapshot)
    facts = _html_table(["", ""], [[n, v] for n, v in _facts(snapshot, recommendation)])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(readout.title)} — Splitlab report</title>",
        f"<style>{STYLE}</style></head><body>",
        f'<header><p class="muted">Splitlab experiment report · {escape(snapshot.experiment)}</p>',
        f"<h1>{escape(readout.title)}</h1>",
        f'<p class="headline {tone}">{escape(readout.headline)}</p></header><main>',
        *_html_section(readout),
        '<section id="charts"><h2>Charts</h2>',
        *(f"<figure>{svg}</figure>" for svg in charts if svg),
        "</section>",
        f'<section id="results-table"><h2>Results</h2>{_html_table(header, rows, numeric_from=3)}',
        "</section>",
        f'<section id="facts"><h2>Facts</h2>{facts}</section>',
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def load_inputs(*, services: Services, key: str, refresh: bool = False) -> ReportInputs:
    """The recommendation for ``key`` (``refresh``: analyse new data first), the snapshot it
    was made from and the experiment's spec."""
    recommendation = recommend_experiment(services=services, key=key, refresh=refresh)
    snapshot = latest(services=services, key=key)
    if snapshot.snapshot_id != recommendation.snapshot_id:
        # a new analysis landed between the two reads: one more round makes them agree
        recommendation = recommend_experiment(services=services, key=key)
        snapshot = latest(services=services, key=key)
        if snapshot.snapshot_id != recommendation.snapshot_id:
            raise ConflictError(
                f"experiment {key!r} is being re-analysed as data arrives; try again",
                details={"key": key},
            )
    with services.sessions() as session:
        spec = spec_from_row(get_experiment(session=session, key=key))
    return ReportInputs(snapshot=snapshot, recommendation=recommendation, spec=spec)


def experiment_report(
    *,
    services: Services,
    key: str,
    format: ReportFormat | str,
    refresh: bool = False,
    llm: bool = False,
) -> bytes:
    """The report of experiment ``key`` in ``format`` (NotFoundError for an unknown key);
    ``llm`` asks the configured model for a readout, falling back to the deterministic one."""
    kind = ReportFormat(format)
    inputs = load_inputs(services=services, key=key, refresh=refresh)
    answer = None
    if llm:
        answer = llm_readout(
            settings=services.settings,
            snapshot=inputs.snapshot,
            recommendation=inputs.recommendation,
            readout=build_readout(
                snapshot=inputs.snapshot, recommendation=inputs.recommendation, spec=inputs.spec
            ),
        )
    return render_report(
        snapshot=inputs.snapshot,
        recommendation=inputs.recommendation,
        spec=inputs.spec,
        format=kind,
        llm=answer,
    )

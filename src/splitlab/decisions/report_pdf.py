"""The PDF report, made offline with fpdf2: the readout, a forest plot of every metric's
relative effect drawn with fpdf2's primitives, the results table and the identifying facts.

fpdf2's core fonts (Helvetica) cover Latin-1 only; text is transliterated to it (``—`` to
``-``, ``→`` to ``->``, anything else unknown to ``?``) so any metric name prints.
"""

from __future__ import annotations

from datetime import date
from typing import cast

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from splitlab.analysis.render import results_table
from splitlab.analysis.snapshot import Snapshot
from splitlab.decisions.charts import (
    COLOURS,
    SERIES,
    daily_series,
    forest,
    nice_range,
    primary_metric,
    tick_label,
    ticks,
)
from splitlab.decisions.readout import Readout
from splitlab.decisions.recommendation import Recommendation

LATIN1 = str.maketrans(
    {
        "—": "-",
        "–": "-",
        "−": "-",
        "→": "->",
        "≥": ">=",
        "≤": "<=",
        "…": "...",
        "‘": "'",
        "’": "'",
        "“": '"',
        "”": '"',
        "·": "-",
        "■": "*",
        "•": "-",
        "\u00a0": " ",
    }
)
HEADLINE_FILL = {
    "good": (229, 241, 249),
    "bad": (251, 238, 229),
    "neutral": (242, 244, 247),
}
TONE = {
    "SHIP_GLOBAL": "good",
    "SHIP_TARGETED_SEGMENTS": "good",
    "KILL": "bad",
    "ROLLBACK": "bad",
    "HOLD_GUARDRAIL_RISK": "bad",
    "INVESTIGATE_INVALID_EXPERIMENT": "bad",
}


def latin1(text: str) -> str:
    """``text`` in the Latin-1 the core fonts can print."""
    return text.translate(LATIN1).encode("latin-1", "replace").decode("latin-1")


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class ReportPDF(FPDF):
    """A4 portrait with a footer naming the experiment and the page."""

    def __init__(self, experiment: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.experiment = experiment
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=7)
        self.set_text_color(93, 103, 120)
        self.cell(0, 5, latin1(f"Splitlab report - {self.experiment} - page {self.page_no()}"))

    def heading(self, text: str, size: float = 13) -> None:
        self.ln(2)
        self.set_font("Helvetica", "B", size)
        self.set_text_color(29, 35, 48)
        self.multi_cell(0, size * 0.5, latin1(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)

    def paragraph(self, text: str, *, indent: float = 0, size: float = 9.5) -> None:
        self.set_font("Helvetica", size=size)
        self.set_text_color(29, 35, 48)
        self.set_x(self.l_margin + indent)
        self.multi_cell(
            self.epw - indent, 4.6, latin1(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.ln(1.2)


def _forest(pdf: ReportPDF, snapshot: Snapshot) -> None:
    items = forest(snapshot)
    if not items:
        return
    row_h, label_w = 6.0, 62.0
    height = row_h * len(items) + 14
    if pdf.get_y() + height > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.heading("Relative effect with CI, every metric", size=11)
    left, top = pdf.l_margin, pdf.get_y()
    plot_w = pdf.epw - label_w - 4
    lo, hi = nice_range([v for i in items for v in (i.low, i.high)])

    def x(value: float) -> float:
        return left + label_w + (value - lo) / (hi - lo) * plot_w

    axis_y = top + row_h * len(items)
    pdf.set_font("Helvetica", size=7)
    pdf.set_draw_color(228, 231, 236)
    pdf.set_line_width(0.2)
    for tick in ticks(lo, hi):
        pdf.line(x(tick), top, x(tick), axis_y)
        pdf.set_text_color(93, 103, 120)
        label = tick_label(tick)
        pdf.text(x(tick) - pdf.get_string_width(label) / 2, axis_y + 4, label)
    pdf.set_draw_color(29, 35, 48)
    pdf.line(x(0.0), top, x(0.0), axis_y)
    for index, item in enumerate(items):
        y = top + row_h * index + row_h / 2
        pdf.set_text_color(29, 35, 48)
        pdf.set_font("Helvetica", size=7.5)
        label = latin1(item.label)
        while pdf.get_string_width(label) > label_w - 3 and len(label) > 4:
            label = label[:-2]
        pdf.text(left + label_w - 2 - pdf.get_string_width(label), y + 1.2, label)
        colour = _rgb(COLOURS[item.tone])
        pdf.set_draw_color(*colour)
        pdf.set_fill_color(*colour)
        pdf.set_line_width(0.6)
        pdf.line(x(item.low), y, x(item.high), y)
        pdf.circle(x(item.effect), y, 1.1, style="F")
    pdf.set_line_width(0.2)
    pdf.set_y(axis_y + 6)
    pdf.set_font("Helvetica", size=7)
    pdf.set_text_color(93, 103, 120)
    pdf.cell(
        0,
        4,
        "blue: significant improvement; orange: significant regression; grey: not significant",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )


def _daily(pdf: ReportPDF, snapshot: Snapshot) -> None:
    """The primary metric's cumulative daily relative effect per treatment, with CI bands."""
    primary = primary_metric(snapshot)
    series = [s for s in daily_series(snapshot, primary.key) if s.days] if primary else []
    if primary is None or not series:
        return
    height, axis_w = 62.0, 14.0
    if pdf.get_y() + height + 16 > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.heading(f"{primary.name}: cumulative relative effect by day", size=11)
    left, top = pdf.l_margin + axis_w, pdf.get_y()
    width = pdf.epw - axis_w
    days = sorted({d for s in series for d in s.days})
    index = {d: i for i, d in enumerate(days)}
    lo, hi = nice_range([v for s in series for v in (*s.low, *s.high)])

    def x(day: date) -> float:
        return left + index[day] / max(len(days) - 1, 1) * width

    def y(value: float) -> float:
        return top + (hi - value) / (hi - lo) * height

    pdf.set_font("Helvetica", size=7)
    pdf.set_line_width(0.2)
    for tick in ticks(lo, hi):
        pdf.set_draw_color(*((29, 35, 48) if abs(tick) < 1e-12 else (228, 231, 236)))
        pdf.line(left, y(tick), left + width, y(tick))
        pdf.set_text_color(93, 103, 120)
        label = tick_label(tick)
        pdf.text(left - 1.5 - pdf.get_string_width(label), y(tick) + 1, label)
    for day in (days[0], days[-1]):
        label = day.isoformat()
        shift = 0 if day == days[0] else pdf.get_string_width(label)
        pdf.text(x(day) - shift, top + height + 4, label)
    legend_x = left
    for number, s in enumerate(series):
        colour = _rgb(SERIES[number % len(SERIES)])
        band = [(x(d), y(v)) for d, v in zip(s.days, s.high, strict=True)]
        band += [(x(d), y(v)) for d, v in reversed(list(zip(s.days, s.low, strict=True)))]
        pdf.set_fill_color(*colour)
        with pdf.local_context(fill_opacity=0.15):
            pdf.polygon(band, style="F")
        pdf.set_draw_color(*colour)
        pdf.set_line_width(0.5)
        pdf.polyline([(x(d), y(v)) for d, v in zip(s.days, s.effect, strict=True)])
        pdf.set_text_color(*colour)
        label = latin1(f"- {s.variant}")
        pdf.text(legend_x, top + height + 9, label)
        legend_x += pdf.get_string_width(label) + 8
    pdf.set_line_width(0.2)
    pdf.set_y(top + height + 12)


WIDTHS = (28, 17, 22, 24, 24, 13, 24, 13, 13)
"""Column widths (mm) of the results table: metric, variant, segment, control, treatment,
effect, CI, p, p adj (or chance to win, risk)."""


def _table(pdf: ReportPDF, header: list[str], rows: list[list[str]]) -> None:
    scale = pdf.epw / sum(WIDTHS)
    widths = [w * scale for w in WIDTHS]
    line_h = 3.6

    def draw(cells: list[str], *, bold: bool, heading: bool = False) -> None:
        pdf.set_font("Helvetica", "B" if bold else "", 6.5)
        texts = [latin1(c) for c in cells]
        # one line per cell when everything fits (cheap cell()); wrapped cells otherwise
        single = all(
            pdf.get_string_width(t) <= w - 2 * pdf.c_margin
            for w, t in zip(widths, texts, strict=True)
        )
        if single:
            height = line_h
        else:
            counts = [
                len(cast(list[str], pdf.multi_cell(w, line_h, t, dry_run=True, output="LINES")))
                for w, t in zip(widths, texts, strict=True)
            ]
            height = line_h * max(counts)
        if pdf.get_y() + height > pdf.h - pdf.b_margin:
            pdf.add_page()
            if not heading:  # the header again at the top of each page
                draw(header, bold=True, heading=True)
                pdf.set_font("Helvetica", "B" if bold else "", 6.5)
        y = pdf.get_y()
        x = pdf.l_margin
        for w, t in zip(widths, texts, strict=True):
            pdf.set_xy(x, y)
            if single:
                pdf.cell(w, line_h, t, border="B")
            else:
                pdf.multi_cell(
                    w,
                    line_h,
                    t,
                    border="B",
                    new_x=XPos.RIGHT,
                    new_y=YPos.TOP,
                    max_line_height=line_h,
                )
            x += w
        pdf.set_xy(pdf.l_margin, y + height)

    pdf.set_draw_color(228, 231, 236)
    pdf.set_text_color(29, 35, 48)
    draw(header, bold=True, heading=True)
    for row in rows:
        draw(row, bold=row[2] == "all")  # overall rows stand out from their segments


def pdf_report(snapshot: Snapshot, recommendation: Recommendation, readout: Readout) -> bytes:
    """The PDF report's bytes (its creation date is the snapshot's, so the same inputs give
    the same file)."""
    pdf = ReportPDF(snapshot.experiment)
    pdf.set_title(latin1(f"{readout.title} - Splitlab report"))
    pdf.set_author("Splitlab")
    pdf.set_creation_date(snapshot.created_at)
    pdf.add_page()
    pdf.set_font("Helvetica", size=8)
    pdf.set_text_color(93, 103, 120)
    pdf.cell(
        0,
        5,
        latin1(f"Splitlab experiment report - {snapshot.experiment}"),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.heading(readout.title, size=18)
    pdf.set_fill_color(*HEADLINE_FILL[TONE.get(recommendation.code.value, "neutral")])
    pdf.set_font("Helvetica", "B", 10.5)
    pdf.multi_cell(
        0, 6, latin1(readout.headline), fill=True, padding=2, new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    for section in readout.sections:
        pdf.heading(section.title)
        for paragraph in section.paragraphs:
            pdf.paragraph(paragraph)
        for bullet in section.bullets:
            pdf.paragraph(f"- {bullet}", indent=3)
    _forest(pdf, snapshot)
    _daily(pdf, snapshot)
    pdf.add_page()
    pdf.heading("Results")
    header, rows = results_table(snapshot)
    _table(pdf, header, rows)
    return bytes(pdf.output())

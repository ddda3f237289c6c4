"""Reports: ``GET /api/experiments/{key}/report.{format}`` — an experiment's readout,
recommendation and results as Markdown, self-contained HTML, PDF, JSON or CSV."""

from __future__ import annotations

import re

from fastapi import APIRouter, Query, Response

from splitlab.api.deps import Reader, ServicesDep
from splitlab.decisions.reports import MEDIA_TYPES, ReportFormat, experiment_report, filename

router = APIRouter(prefix="/api/experiments", tags=["reports"])

REPORT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The report, as an attachment named ``{key}-report.{format}``.",
        "content": {
            media.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
            for media in MEDIA_TYPES.values()
        },
    },
    409: {
        "description": "The experiment has not started (nothing to report yet), or it is being "
        "re-analysed as data arrives",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}
"""The documented answers (the error responses are added for every route by ``api.docs``)."""


def _safe_name(name: str) -> str:
    """A Content-Disposition filename of plain characters only."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:200]


@router.get(
    "/{key}/report.{format}",
    response_class=Response,
    responses=REPORT_RESPONSES,
)
def report(
    key: str,
    format: ReportFormat,
    services: ServicesDep,
    _: Reader,
    refresh: bool = Query(
        default=False, description="analyse new data first and re-run the policy engine"
    ),
    llm: bool = Query(
        default=False,
        description="add a readout written by the configured LLM (SPLITLAB_LLM_*); on any "
        "failure the report carries the deterministic readout only (the JSON format says "
        "which in readout_source)",
    ),
) -> Response:
    """The experiment's report: md (Markdown), html (one self-contained page with inline SVG
    charts, no external resource), pdf, json (snapshot, ``recommendation`` with its code,
    reasons and evidence, readout) or csv (one row per metric × variant × segment). Analyses
    the experiment first if it never was; 404 for an unknown experiment, 422 for another
    format."""
    content = experiment_report(services=services, key=key, format=format, refresh=refresh, llm=llm)
    return Response(
        content=content,
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{_safe_name(filename(key, format))}"'
        },
    )

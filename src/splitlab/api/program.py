"""The program views as JSON: ``GET /api/program/{view}`` for ``impact`` (shipped changes and
their James–Stein-shrunk total), ``tracker`` (hypotheses, predictions, verdicts and the
team's calibration) and ``cost-benefit`` (cost against measured benefit). The same data as
the dashboard's ``/program/{view}?format=json`` and ``splitlab program VIEW --json``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query

from splitlab.api.deps import Reader, ServicesDep
from splitlab.decisions.program import MAX_TEXT, parse_filters
from splitlab.decisions.program_views import program_view

router = APIRouter(prefix="/api/program", tags=["program"])

Text = Query(default="", max_length=MAX_TEXT, description="exact match; empty: all")


@router.get("/{view}", summary="A program view over the decided experiments")
def program(
    view: Literal["impact", "tracker", "cost-benefit"],
    services: ServicesDep,
    _: Reader,
    team: str = Text,
    type: str = Text,
    range: Literal["90d", "180d", "365d", "all"] = Query(
        default="all", description="experiments decided within this many days"
    ),
    period: Literal["month", "quarter"] = Query(
        default="quarter", description="tracker: calibration per month or quarter"
    ),
    benefit: Literal["lift", "value"] = Query(
        default="lift",
        description="cost-benefit: primary-metric lift or the recommendation's value per day",
    ),
) -> dict[str, Any]:
    """Definitions in ``decisions.program``: decided = rolling out, shipped, killed or
    rolled back; lifts are relative and signed so that larger is better; a 422 names every
    bad filter."""
    params = {"team": team, "type": type, "range": range, "period": period, "benefit": benefit}
    filters = parse_filters(params)
    return program_view(services=services, view=view, filters=filters, now=datetime.now(UTC))

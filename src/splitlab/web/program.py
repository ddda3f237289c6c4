"""The program views (``/program/{view}``) for product managers, engineering managers and
finance: optimisation history and impact, the hypothesis tracker, cost-benefit and velocity
per team — each with its filters in the URL and a JSON twin (``?format=json``).

The numbers come from ``decisions.program`` (stored rows, never an analysis) and, for
velocity, from the fleet view's rows and the counts it shares with them
(``decisions.velocity``), so the two pages can never disagree; this module only lays them out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from splitlab.api.deps import ServicesDep
from splitlab.decisions import velocity
from splitlab.decisions.program import ProgramFilters, parse_filters
from splitlab.decisions.program_views import program_view
from splitlab.errors import NotFoundError, ValidationError
from splitlab.services import Services
from splitlab.store import program as store
from splitlab.web import fleet
from splitlab.web import fleet_charts as fleet_charts
from splitlab.web import program_charts as charts
from splitlab.web.common import page, viewer
from splitlab.web.common import page_number as requested_page

router = APIRouter(include_in_schema=False)

TABS = (
    ("impact", "Impact"),
    ("tracker", "Hypothesis tracker"),
    ("cost-benefit", "Cost-benefit"),
    ("velocity", "Velocity"),
)
VIEW_NAMES = dict(TABS)
PER_PAGE = 100
"""Table rows per HTML page (the JSON twin keeps every row)."""
VELOCITY_DAYS = {"90d": 90, "180d": 180, "365d": 365, "all": 90}
"""The velocity view's comparison period (``all`` compares the last 90 days)."""


def _months_back(now: datetime, count: int) -> list[tuple[str, datetime, datetime]]:
    """The last ``count`` calendar months as (YYYY-MM, start, end), oldest first; the
    current month ends now."""
    months = []
    year, month = now.year, now.month
    for _ in range(count):
        start = datetime(year, month, 1, tzinfo=UTC)
        following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        months.append((f"{year:04d}-{month:02d}", start, min(following, now)))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(months))


def velocity_view(services: Services, filters: ProgramFilters, *, now: datetime) -> dict[str, Any]:
    """Launched, completed, median duration and win rate per team per month (the fleet
    view's definitions: ``decisions.velocity``), and per team for the selected period beside the
    period before it."""
    rows, _, dates = fleet.load_rows(services, now=now)
    rows = [
        r
        for r in rows
        if (not filters.team or r.experiment.team == filters.team)
        and (not filters.type or r.experiment.type == filters.type)
    ]
    days = VELOCITY_DAYS[filters.range]
    since = now - timedelta(days=days)
    before = since - (now - since)
    teams = sorted({r.experiment.team or "(no team)" for r in rows})
    months = _months_back(now, 6 if filters.range in ("90d", "180d", "all") else 12)
    per_team = []
    for team in teams:
        mine = [r for r in rows if (r.experiment.team or "(no team)") == team]
        launched = {m: 0 for m, _, _ in months}
        completed = {m: 0 for m, _, _ in months}
        for r in mine:
            d = dates.get(r.key)
            if d is None:
                continue
            if d.started is not None and f"{d.started:%Y-%m}" in launched:
                launched[f"{d.started:%Y-%m}"] += 1
            if d.stopped is not None and f"{d.stopped:%Y-%m}" in completed:
                completed[f"{d.stopped:%Y-%m}"] += 1
        monthly = []
        for name, start, end in months:
            kpis = velocity.kpis(mine, dates, start=start, end=end)
            monthly.append(
                {"month": name, "launched": launched[name], "completed": completed[name]} | kpis
            )
        current = velocity.kpis(mine, dates, start=since, end=now)
        previous = velocity.kpis(mine, dates, start=before, end=since)
        per_team.append(
            {
                "team": team,
                "months": monthly,
                "current": current
                | {"launched": velocity.reached(mine, dates, since, now, milestone="started")}
                | {"completed": velocity.reached(mine, dates, since, now, milestone="stopped")},
                "previous": previous
                | {"launched": velocity.reached(mine, dates, before, since, milestone="started")}
                | {"completed": velocity.reached(mine, dates, before, since, milestone="stopped")},
            }
        )
    return {
        "period_days": days,
        "since": since.isoformat(),
        "previous_since": before.isoformat(),
        "win_band": list(fleet_charts.WIN_BAND),
        "teams": per_team,
    }


def _filters(request: Request) -> ProgramFilters:
    return parse_filters(dict(request.query_params))


def _listing(view: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the view's table, in the order the page lists them."""
    if view == "tracker":
        return list(data["rows"])
    if view == "cost-benefit":
        return sorted(data["points"], key=lambda p: (-p["cost"], p["key"]))
    if view == "impact":
        return list(reversed(data["changes"]))
    return []


@router.get("/program")
def program_home(request: Request) -> Response:
    """``/program`` opens the impact view (filters kept)."""
    query = request.url.query
    return RedirectResponse("/program/impact" + (f"?{query}" if query else ""), status_code=303)


@router.get("/program/{view}")
def program_page(view: str, request: Request, services: ServicesDep) -> Response:
    """One program view; ``?format=json`` its JSON twin."""
    if view not in VIEW_NAMES:
        raise NotFoundError(f"no program view {view[:40]!r}", details={"views": list(VIEW_NAMES)})
    user, _ = viewer(request, services)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    fmt = request.query_params.get("format", "html")
    if fmt not in ("html", "json"):
        raise ValidationError(
            "format must be html or json",
            details=[{"loc": ["query", "format"], "msg": "html or json"}],
        )
    filters = _filters(request)
    page_number = requested_page(request)
    now = datetime.now(UTC)
    if view == "velocity":
        data = {"view": "velocity", "filters": vars(filters) | {}} | velocity_view(
            services, filters, now=now
        )
        figures = charts.velocity_figures(data)
    else:
        data = program_view(services=services, view=view, filters=filters, now=now)
        figures = charts.figures(view, data)
    with services.sessions() as session:
        teams, types = store.teams_and_types(session=session)
    listing = _listing(view, data)
    pages = max(1, -(-len(listing) // PER_PAGE))
    page_number = min(page_number, pages)
    context = {
        "page_rows": listing[(page_number - 1) * PER_PAGE : page_number * PER_PAGE],
        "page_number": page_number,
        "pages": pages,
        "listed": len(listing),
        "per_page": PER_PAGE,
        "view": view,
        "view_name": VIEW_NAMES[view],
        "tabs": TABS,
        "filters": filters,
        "data": data,
        "figures": figures,
        "teams": teams,
        "types": types,
    }
    return page(request, services, "program.html", context, twin=data)

"""The fleet view (``/``): every experiment at a glance — cards for the active ones with the
next action, a results leaderboard, the sortable list, program velocity and the rollout
timeline — with every filter and sort in the URL, a JSON twin (``?format=json``) and a CSV
export of the list (``?format=csv`` or ``/experiments.csv``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from splitlab.api.deps import ServicesDep
from splitlab.decisions.recommendation import Recommendation
from splitlab.decisions.service import latest_recommendations
from splitlab.decisions.velocity import Dates, milestones
from splitlab.domain import Principal
from splitlab.errors import ValidationError
from splitlab.services import Services
from splitlab.store import fleet as store
from splitlab.web import fleet_charts as charts
from splitlab.web.common import csv_text, page, viewer
from splitlab.web.common import page_number as requested_page
from splitlab.web.fleet_model import (
    ACTIVE,
    OUTCOMES,
    RANGES,
    SIGNIFICANCE,
    STATUSES,
    SUMMARIES,
    Filters,
    FleetRow,
    Summary,
    build_row,
    matches,
    sort_rows,
    summarize_payload,
)

router = APIRouter(include_in_schema=False)

PER_PAGE = 100
CARDS = 24
LEADERS = 10
MAX_TEXT = 200


def read_filters(request: Request) -> Filters:
    """The filters in the query string, each checked (422 for a value the view does not know)."""
    params = request.query_params
    problems = []

    def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
        value = params.get(name, default)
        if value not in allowed:
            problems.append({"loc": ["query", name], "msg": f"one of {', '.join(allowed)}"})
            return default
        return value

    def text(name: str) -> str:
        value = params.get(name, "")
        if len(value) > MAX_TEXT or any(ord(c) < 32 for c in value):
            problems.append(
                {"loc": ["query", name], "msg": f"at most {MAX_TEXT} printable characters"}
            )
            return ""
        return value.strip()

    sorts = tuple(f"{sign}{name}" for name in _SORT_NAMES for sign in ("", "-"))
    filters = Filters(
        range=pick("range", tuple(RANGES), "30d"),
        team=text("team"),
        status=pick("status", ("active", "all", *STATUSES), "active"),
        type=text("type"),
        significance=pick("significance", ("", *SIGNIFICANCE), ""),
        outcome=pick("outcome", ("", *OUTCOMES), ""),
        q=text("q"),
        sort=pick("sort", sorts, "-updated"),
        lsort=pick("lsort", sorts, "-goodlift"),
    )
    if problems:
        raise ValidationError("the fleet view's filters are not valid", details=problems)
    return filters


_SORT_NAMES = (
    "key",
    "name",
    "team",
    "type",
    "status",
    "lift",
    "goodlift",
    "progress",
    "days",
    "started",
    "updated",
)


def _recommendations(services: Services, keys: list[str]) -> dict[str, Recommendation]:
    """The stored recommendations of these experiments (one query, no engine run)."""
    return latest_recommendations(services=services, keys=keys)


class MoveLog:
    """Every experiment's lifecycle moves from the audit log, read once and then extended by
    the entries added since. Each read first asks the store how many such entries there are
    and the newest id: unchanged, the list is reused; a larger count that the entries above
    the newest id known explain, they are added; anything else (a transaction that committed
    a lower id after a higher one, as PostgreSQL allows; another database under the name)
    reads the whole list again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, int, dict[str, list[store.Transition]]]] = {}

    def read(self, session: Any, services: Services) -> dict[str, list[store.Transition]]:
        """Moves per experiment key, oldest first (``session`` is an open app-store session)."""
        name = str(services.settings.resolved_database_url())
        with self._lock:
            count, top = store.transition_stats(session=session)
            known_count, known_top, known = self._state.get(name, (0, 0, {}))
            if (count, top) != (known_count, known_top):
                added = []
                if known and count > known_count and top > known_top:
                    added = store.transitions(session=session, after_id=known_top)
                if not added or known_count + len(added) != count:
                    known, known_count, known_top = {}, 0, 0
                    added = store.transitions(session=session)
                known = {key: list(moves) for key, moves in known.items()}
                for move in added:
                    known.setdefault(move.key, []).append(move)
                for key in {move.key for move in added}:
                    known[key].sort(key=lambda m: (m.at, m.id))
                known_count += len(added)
                known_top = max([known_top, *(move.id for move in added)])
                self._state[name] = (known_count, known_top, known)
            return known

    def clear(self) -> None:
        """Forget every list read."""
        with self._lock:
            self._state.clear()


MOVES = MoveLog()


def summaries(services: Services, ids: list[int]) -> dict[int, Summary]:
    """Each snapshot's card summary: from the in-process cache, reading only the payloads of
    snapshots not summarised yet."""
    name = str(services.settings.resolved_database_url())
    found, missing = SUMMARIES.get_many(name, ids)
    if missing:
        with services.sessions() as session:
            payloads = store.snapshot_payloads(session=session, ids=missing)
        for snapshot_id, payload in payloads.items():
            summary = summarize_payload(snapshot_id, payload)
            SUMMARIES.put(name, summary)
            found[snapshot_id] = summary
    return found


def load_rows(
    services: Services, *, now: datetime
) -> tuple[list[FleetRow], dict[str, list[store.Transition]], dict[str, Dates]]:
    """Every experiment as a fleet row (without its recommendation: see ``advise``), with its
    transitions and milestones."""
    with services.sessions() as session:
        experiments = store.fleet_experiments(session=session)
        moves = MOVES.read(session, services)
        decided = store.first_decisions(session=session)
        rollouts = store.rollout_percents(session=session)
    ids = [e.snapshot_id for e in experiments if e.snapshot_id is not None]
    by_id = summaries(services, ids)
    rows, dates = [], {}
    for experiment in experiments:
        when = milestones(moves.get(experiment.key, []), decided.get(experiment.key))
        dates[experiment.key] = when
        summary = by_id.get(experiment.snapshot_id) if experiment.snapshot_id else None
        rows.append(
            build_row(
                experiment,
                summary=summary,
                rec=None,
                now=now,
                started_at=when.started,
                ended_at=when.ended or when.stopped,
                rollout=rollouts.get(experiment.key),
            )
        )
    return rows, moves, dates


ADVISED = ("running", "stopped", "readout")
"""The states whose badge follows the stored recommendation (``fleet_model.badge_for``)."""


def advise(services: Services, rows: list[FleetRow], *, now: datetime) -> dict[str, FleetRow]:
    """These rows with their stored recommendations, by key — read only for the experiments
    whose badge depends on one."""
    keys = sorted({r.key for r in rows if r.summary is not None and r.experiment.status in ADVISED})
    recs = _recommendations(services, keys) if keys else {}
    advised = {}
    for row in rows:
        rec = recs.get(row.key)
        if rec is not None:
            row = build_row(
                row.experiment,
                summary=row.summary,
                rec=rec,
                now=now,
                started_at=row.started_at,
                ended_at=row.ended_at,
                rollout=row.rollout,
            )
        advised[row.key] = row
    return advised


def row_json(row: FleetRow) -> dict[str, Any]:
    """One list row in the JSON twin and the CSV export."""
    e, p, s = row.experiment, row.primary, row.summary
    rec = row.recommendation
    return {
        "key": e.key,
        "name": e.name,
        "team": e.team,
        "type": e.type,
        "owner": e.owner,
        "status": e.status,
        "badge": row.badge.label,
        "needs_action": row.badge.act,
        "recommendation": rec.code.value if rec else None,
        "metric": s.metric if s else None,
        "lower_is_better": s.lower_is_better if s else None,
        "variant": p.variant if p else None,
        "lift": p.rel_effect if p else None,
        "ci_low": p.rel_ci_low if p else None,
        "ci_high": p.rel_ci_high if p else None,
        "p_value": p.p_value if p else None,
        "significance": row.significance,
        "outcome": row.outcome,
        "progress": row.progress,
        "progress_basis": row.progress_basis,
        "power": p.power if p else None,
        "days_left": row.days_left,
        "warnings": [message for _, message in s.warnings] if s else [],
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "updated_at": e.updated_at.isoformat(),
        "snapshot_id": e.snapshot_id,
    }


CSV_COLUMNS = [
    "key",
    "name",
    "team",
    "type",
    "owner",
    "status",
    "badge",
    "needs_action",
    "recommendation",
    "metric",
    "variant",
    "lift",
    "ci_low",
    "ci_high",
    "p_value",
    "significance",
    "outcome",
    "progress",
    "progress_basis",
    "power",
    "days_left",
    "started_at",
    "ended_at",
    "updated_at",
]


def to_csv(rows: list[FleetRow]) -> str:
    """The list as CSV, one row per experiment, in the view's order."""
    return csv_text(CSV_COLUMNS, (row_json(row) for row in rows))


def _card_order(row: FleetRow) -> tuple[int, int, str]:
    return (
        0 if row.badge.act else 1,
        row.days_left if row.days_left is not None else 9999,
        row.key,
    )


_ACTION_WORDS = {
    "ship now": "Ship…",
    "roll back": "Roll back…",
    "lost": "Kill…",
    "unhealthy": "Investigate",
    "guardrail risk": "Check guardrails",
}


def _actions(row: FleetRow, user: Principal | None) -> list[dict[str, str]]:
    """Quick actions a card offers this user (links to the experiment page's sections)."""
    if user is None:
        return []
    found = []
    base = f"/experiments/{row.key}"
    status = row.experiment.status
    if status == "review" and user.can_review():
        found.append({"label": "Review", "href": f"{base}#review"})
    if user.can_edit():
        if row.badge.act and status in ("running", "stopped", "readout"):
            label = _ACTION_WORDS.get(row.badge.label, "Decide")
            found.append({"label": label, "href": f"{base}#actions"})
        elif status == "draft":
            found.append({"label": "Edit draft", "href": f"{base}#actions"})
    return found


def build_view(
    services: Services, filters: Filters, *, now: datetime, page_number: int = 1
) -> dict[str, Any]:
    """Everything the fleet page shows, for its template and its JSON twin."""
    rows, moves, dates = load_rows(services, now=now)
    listed = [r for r in rows if matches(r, filters, now)]
    program_filters = Filters(**(vars(filters) | {"status": "all"}))
    program = [r for r in rows if matches(r, program_filters, now)]
    with_lift = [r for r in program if r.good_lift is not None and r.experiment.status != "draft"]
    by_good = sorted(with_lift, key=lambda r: (-(r.good_lift or 0.0), r.key))
    leaders = by_good[:LEADERS] + [r for r in by_good[LEADERS:][-LEADERS:]]
    advised = advise(services, listed + leaders, now=now)
    listed = sort_rows([advised[r.key] for r in listed], filters.sort)
    leaders = sort_rows([advised[r.key] for r in leaders], filters.lsort)
    cards = sorted((r for r in listed if r.experiment.status in ACTIVE), key=_card_order)
    context_filters = Filters(
        **(vars(program_filters) | {"significance": "", "outcome": "", "range": "all"})
    )
    velocity_rows = [r for r in rows if matches(r, context_filters, now)]
    pages = max(1, -(-len(listed) // PER_PAGE))
    page_number = min(page_number, pages)
    return {
        "now": now,
        "filters": filters,
        "rows": rows,
        "listed": listed,
        "page_rows": listed[(page_number - 1) * PER_PAGE : page_number * PER_PAGE],
        "page_number": page_number,
        "pages": pages,
        "cards": cards[:CARDS],
        "cards_total": len(cards),
        "leaders": leaders,
        "velocity": charts.velocity(velocity_rows, dates, since=filters.since(now), now=now),
        "timeline": charts.timeline(program, moves, now=now),
        "teams": sorted({r.experiment.team for r in rows if r.experiment.team}),
        "types": sorted({r.experiment.type for r in rows}),
    }


def twin(view: dict[str, Any]) -> dict[str, Any]:
    """The page's JSON twin."""
    filters: Filters = view["filters"]
    velocity = {k: v for k, v in view["velocity"].items() if k != "figures"}
    return {
        "filters": vars(filters),
        "total": len(view["listed"]),
        "cards": [row_json(r) for r in view["cards"]],
        "cards_total": view["cards_total"],
        "experiments": [row_json(r) for r in view["listed"]],
        "leaderboard": [row_json(r) for r in view["leaders"]],
        "velocity": velocity,
        "timeline": {
            "shown": view["timeline"]["shown"],
            "total": view["timeline"]["total"],
        },
    }


def _csv_response(rows: list[FleetRow]) -> Response:
    return Response(
        to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="experiments.csv"'},
    )


@router.get("/")
def fleet(request: Request, services: ServicesDep) -> Response:
    """The fleet view; ``?format=json`` its twin, ``?format=csv`` the list as CSV."""
    user, _ = viewer(request, services)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    filters = read_filters(request)
    fmt = request.query_params.get("format", "html")
    if fmt not in ("html", "json", "csv"):
        raise ValidationError(
            "format must be html, json or csv",
            details=[{"loc": ["query", "format"], "msg": "html, json or csv"}],
        )
    now = datetime.now(UTC)
    view = build_view(services, filters, now=now, page_number=requested_page(request))
    if fmt == "csv":
        return _csv_response(view["listed"])
    figures = {
        "launches": view["velocity"]["figures"]["launches"],
        "win_rate": view["velocity"]["figures"]["win_rate"],
        "timeline": view["timeline"]["figure"],
    }
    context = view | {
        "figures": figures,
        "actions": {r.key: _actions(r, user) for r in view["cards"]},
    }
    return page(request, services, "fleet.html", context, twin=twin(view))


@router.get("/experiments.csv")
def fleet_csv(request: Request, services: ServicesDep) -> Response:
    """The fleet list (with the same filters and sort) as CSV."""
    user, _ = viewer(request, services)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    filters = read_filters(request)
    view = build_view(services, filters, now=datetime.now(UTC))
    return _csv_response(view["listed"])

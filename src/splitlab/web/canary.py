"""The canary monitor (``/canary/{key}``): control against the canary on error rate, latency
and quality with always-valid bounds, kept current by server-sent events, and a rollback
button.

* ``GET /canary/{key}`` — the page (``?format=json``: its twin, ``decisions.canary``'s state);
* ``GET /canary/{key}/events`` — ``text/event-stream``: a ``state`` event at once and whenever
  the stored snapshot, the recommendation, the status or the rollout's audit trail changes
  (re-read every ``interval`` seconds, 1–60, default 5), a ``ping`` otherwise; ``limit`` ends
  the stream after that many events (the browser's EventSource reconnects by itself);
* ``POST /canary/{key}/rollback`` — CSRF token and a reason; editors only; through
  ``decisions.canary.roll_back`` (a ``rollback`` decision, or the ramp's rollback).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from splitlab.api.deps import ServicesDep
from splitlab.api.sessions import read_session
from splitlab.decisions.canary import canary_state, roll_back
from splitlab.errors import PermissionDeniedError, SplitlabError, ValidationError
from splitlab.services import Services
from splitlab.web.common import check_csrf, page, viewer
from splitlab.web.render import templates

router = APIRouter(include_in_schema=False)

MAX_REASON = 2000
DEFAULT_INTERVAL = 5.0


def _axis(rows: list[dict[str, Any]]) -> dict[str, float]:
    """One relative-effect axis for every row's intervals (+10% padding, zero inside)."""
    values = [0.0]
    for row in rows:
        for pair in (row["ci"], row["always_valid_ci"]):
            values += [v for v in pair if v is not None and math.isfinite(v)]
        if row["margin"] is not None and row["margin_scale"] == "relative":
            values.append(row["margin"] * (1 if not row["higher_is_better"] else -1))
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or 0.01
    return {"low": low - pad, "high": high + pad}


def _at(axis: dict[str, float], value: float | None) -> float | None:
    if value is None:
        return None
    return round((value - axis["low"]) / (axis["high"] - axis["low"]) * 100.0, 2)


def view(state: dict[str, Any]) -> dict[str, Any]:
    """The state with the bars' positions (percent of the shared axis) for the template."""
    axis = _axis(state["rows"])
    rows = []
    for row in state["rows"]:
        ci, av = row["ci"], row["always_valid_ci"]
        rows.append(
            row
            | {
                "bar": {
                    "ci": [_at(axis, ci[0]), _at(axis, ci[1])],
                    "av": [_at(axis, av[0]), _at(axis, av[1])],
                    "est": _at(axis, row["rel_effect"]),
                    "zero": _at(axis, 0.0),
                }
            }
        )
    return state | {"rows": rows, "axis": axis}


def live_html(state: dict[str, Any], request: Request | None = None) -> str:
    """The live part of the page (what every ``state`` event replaces)."""
    template = templates.env.get_template("canary_live.html")
    return template.render(s=view(state), request=request)


@router.get("/canary/{key}")
def canary_page(request: Request, services: ServicesDep, key: str) -> Response:
    """The canary monitor; ``?format=json`` its twin."""
    user, _ = viewer(request, services)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    state = canary_state(services=services, key=key)
    may = bool(user.can_edit())
    context = {"s": view(state), "may_roll_back": may, "max_reason": MAX_REASON}
    return page(request, services, "canary.html", context, twin=state)


def _sse(event: str, data: dict[str, Any], ident: int) -> str:
    return f"event: {event}\nid: {ident}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(
    request: Request, services: Services, key: str, interval: float, limit: int | None
) -> AsyncIterator[str]:
    version = None
    sent = 0
    yield f"retry: {int(interval * 1000)}\n\n"
    while True:
        try:
            state = await asyncio.to_thread(canary_state, services=services, key=key)
        except SplitlabError as exc:
            yield _sse("gone", {"error": str(exc)}, sent)
            return
        now = datetime.now(UTC).isoformat()
        if state["version"] != version:
            version = state["version"]
            html = live_html(state)
            yield _sse("state", {"checked_at": now, "state": state, "html": html}, sent)
        else:
            yield _sse("ping", {"checked_at": now, "version": version}, sent)
        sent += 1
        if limit is not None and sent >= limit:
            return
        await asyncio.sleep(interval)
        if await request.is_disconnected():
            return


@router.get("/canary/{key}/events")
async def canary_events(
    request: Request,
    services: ServicesDep,
    key: str,
    interval: Annotated[float, Query(ge=0.05, le=60)] = DEFAULT_INTERVAL,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """The live stream (module docstring)."""
    user, _ = viewer(request, services)
    if user is None:
        raise PermissionDeniedError("log in to follow the canary")
    await asyncio.to_thread(canary_state, services=services, key=key)  # 404 before streaming
    return StreamingResponse(
        _events(request, services, key, interval, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/canary/{key}/rollback")
def canary_rollback(
    request: Request,
    services: ServicesDep,
    key: str,
    csrf_token: Annotated[str | None, Form()] = None,
    reason: Annotated[str | None, Form()] = None,
) -> Response:
    """Roll the canary back (CSRF, editor, a reason); back to the monitor (303)."""
    principal, session = viewer(request, services)
    check_csrf(session if session is not None else read_session(request, services), csrf_token)
    if principal is None or not principal.can_edit():
        raise PermissionDeniedError("your role may not roll back experiments")
    text = (reason or "").strip()
    if not text or len(text) > MAX_REASON:
        raise ValidationError(
            "a reason is required to roll back",
            details=[{"loc": ["form", "reason"], "msg": f"1 to {MAX_REASON} characters"}],
        )
    outcome = roll_back(services=services, key=key, reason=text, actor=principal)
    return RedirectResponse(f"/canary/{key}?done={outcome}", status_code=303)

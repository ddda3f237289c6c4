"""What every dashboard page shares: who is looking, the CSRF check for forms, rendering a
page or its JSON twin, and the Plotly bundle served from the installed package."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from splitlab.api.deps import ServicesDep
from splitlab.api.sessions import WebSession, csrf_matches, read_session, write_session
from splitlab.domain import LOCAL_ADMIN, Principal
from splitlab.errors import PermissionDeniedError, ValidationError
from splitlab.web.render import render

assets = APIRouter(include_in_schema=False)


def viewer(request: Request, services: ServicesDep) -> tuple[Principal | None, WebSession | None]:
    """The principal behind this browser (the local admin when auth is off) and its session."""
    session = read_session(request, services)
    if not services.settings.auth_enabled:
        return LOCAL_ADMIN, session
    return (session.principal if session else None), session


def check_csrf(request_session: WebSession | None, token: str | None) -> None:
    """Refuse a form post whose CSRF token does not match the session's (403)."""
    if not csrf_matches(request_session, token):
        raise PermissionDeniedError("this form is missing a valid CSRF token; reload the page")


def page_number(request: Request) -> int:
    """The ``page`` query value of a paged list (1 when absent; 422 unless 1 to 100,000)."""
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise ValidationError(
            "page must be a whole number from 1",
            details=[{"loc": ["query", "page"], "msg": "a whole number from 1"}],
        )
    return int(raw)


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A CSV download: a header of ``columns``, then one line per row (missing values blank);
    text that a spreadsheet would run as a formula is quoted with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row[name]) for name in columns])
    return out.getvalue()


def csv_cell(value: Any) -> Any:
    """One CSV cell: ``None`` blank, and text that a spreadsheet would run as a formula
    quoted with ``'``."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def wants_json(request: Request) -> bool:
    """Whether the JSON twin of a page was asked for (``?format=json``)."""
    return request.query_params.get("format") == "json"


def page(
    request: Request,
    services: ServicesDep,
    name: str,
    context: dict[str, Any],
    *,
    twin: Any = None,
    status: int = 200,
) -> Response:
    """Render template ``name`` — or, with ``?format=json``, its JSON twin ``twin`` — and give
    a first visit a session cookie carrying its CSRF token."""
    if twin is not None and wants_json(request):
        return JSONResponse(twin, status_code=status)
    principal, session = viewer(request, services)
    csrf = session.csrf if session else secrets.token_urlsafe(24)
    response = render(request, name, {"user": principal, "csrf": csrf} | context, status=status)
    if session is None:
        write_session(response, services, csrf=csrf)
    return response


@cache
def _plotly_bundle() -> bytes:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path.read_bytes()


@assets.get("/assets/plotly.min.js")
def plotly_js() -> Response:
    """plotly.js from the installed ``plotly`` package: the dashboard needs no CDN."""
    return Response(
        _plotly_bundle(),
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )

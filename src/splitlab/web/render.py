"""Jinja2 rendering shared by the dashboard pages and the HTML error page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

from splitlab.errors import SplitlabError

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    services = request.app.state.services
    base = {"auth_disabled": not services.settings.auth_enabled}
    return templates.TemplateResponse(request, name, base | context, status_code=status)


def render_error(request: Request, error: SplitlabError) -> Response:
    return render(
        request,
        "error.html",
        {"error": error, "user": None, "csrf": ""},
        status=error.status,
    )

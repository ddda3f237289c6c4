"""Dashboard pages (server-rendered): log in and out. The fleet view (``/``) is in
``web.fleet``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from splitlab.api.deps import ServicesDep
from splitlab.api.sessions import log_in, log_out, read_session
from splitlab.store.users import authenticate_password
from splitlab.web.common import check_csrf as _check_csrf
from splitlab.web.common import page as _page
from splitlab.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/login")
def login_form(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "login.html", {"message": ""})


@router.post("/login")
def login(
    request: Request,
    services: ServicesDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    web_session = read_session(request, services)
    _check_csrf(web_session, csrf_token)
    with services.sessions() as session:
        principal = authenticate_password(session=session, username=username, password=password)
    if principal is None:
        response = render(
            request,
            "login.html",
            {"user": None, "csrf": web_session.csrf, "message": "Wrong username or password."},  # type: ignore[union-attr]
            status=401,
        )
        return response
    response = RedirectResponse("/", status_code=303)
    log_in(response, services, username=principal.username)  # new CSRF token after login
    return response


@router.post("/logout")
def logout(
    request: Request,
    services: ServicesDep,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    web_session = read_session(request, services)
    _check_csrf(web_session, csrf_token)
    response = RedirectResponse("/login", status_code=303)
    log_out(response, services, web_session)
    return response

"""Typed FastAPI dependencies: services, the acting principal, and permission checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from splitlab.api.sessions import read_session
from splitlab.domain import LOCAL_ADMIN, Principal
from splitlab.errors import AuthenticationError, PermissionDeniedError
from splitlab.services import Services
from splitlab.store.users import authenticate_api_key

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def request_api_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def get_principal(request: Request, services: ServicesDep) -> Principal:
    """API key (``Authorization: Bearer`` or ``X-API-Key``) first, then the dashboard cookie.

    A cookie-authenticated unsafe request must echo the session's CSRF token in
    ``X-CSRF-Token``, so another site cannot make a logged-in browser change anything.
    """
    if not services.settings.auth_enabled:
        return LOCAL_ADMIN
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    key = request_api_key(request)
    if key:
        with services.sessions() as session:
            principal = authenticate_api_key(session=session, key=key)
        if principal is None:
            raise AuthenticationError("invalid or revoked API key")
    else:
        web_session = read_session(request, services)
        principal = web_session.principal if web_session else None
        if principal is None:
            raise AuthenticationError(
                "authentication required: send an API key as 'Authorization: Bearer <key>'"
            )
        if request.method in UNSAFE_METHODS and (
            request.headers.get("x-csrf-token") != web_session.csrf  # type: ignore[union-attr]
        ):
            raise PermissionDeniedError("missing or wrong X-CSRF-Token header")
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_read(principal: PrincipalDep) -> Principal:
    if not principal.can_read():
        raise PermissionDeniedError(f"this API key's scope ({principal.scope}) cannot read")
    return principal


def require_edit(principal: PrincipalDep) -> Principal:
    if not principal.can_edit():
        raise PermissionDeniedError(
            "editing needs an editor role and a session or an admin-scope API key",
            details={"role": principal.role, "scope": principal.scope},
        )
    return principal


def require_ingest(principal: PrincipalDep) -> Principal:
    if not principal.can_ingest():
        raise PermissionDeniedError(
            "ingestion needs an API key with scope ingest or admin",
            details={"scope": principal.scope},
        )
    return principal


def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin():
        raise PermissionDeniedError("this needs the admin role")
    return principal


Reader = Annotated[Principal, Depends(require_read)]
Editor = Annotated[Principal, Depends(require_edit)]
Ingestor = Annotated[Principal, Depends(require_ingest)]
Admin = Annotated[Principal, Depends(require_admin)]

"""Dashboard sessions: a signed cookie holding the user and a CSRF token."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from splitlab.domain import Principal, Role

if TYPE_CHECKING:
    from splitlab.services import Services

COOKIE = "splitlab_session"
MAX_AGE = 14 * 24 * 3600


@dataclass(frozen=True)
class WebSession:
    csrf: str
    principal: Principal | None = None


def _serializer(services: Services) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services.secret_key, salt="splitlab-session")


def read_session(request: Request, services: Services) -> WebSession | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(services).loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    user = data.get("user")
    principal = Principal(username=user["name"], role=Role(user["role"])) if user else None
    return WebSession(csrf=data["csrf"], principal=principal)


def write_session(
    response: Response, services: Services, *, principal: Principal | None, csrf: str | None = None
) -> WebSession:
    session = WebSession(csrf=csrf or secrets.token_urlsafe(24), principal=principal)
    user = {"name": principal.username, "role": principal.role.value} if principal else None
    response.set_cookie(
        COOKIE,
        _serializer(services).dumps({"csrf": session.csrf, "user": user}),
        max_age=MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=False,  # served on loopback or behind a TLS proxy that sets its own policy
    )
    return session


def csrf_matches(session: WebSession | None, token: str | None) -> bool:
    return bool(session and token and hmac.compare_digest(session.csrf, token))

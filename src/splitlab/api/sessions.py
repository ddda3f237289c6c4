"""Dashboard sessions: a signed cookie holding a CSRF token and, once logged in, the token
of a session row in the app store (``store.web_sessions``). Part of authentication, so the
API's ``get_principal`` reads them here; the dashboard's pages log in and out through them.

The cookie alone grants nothing: each request checks the session against the store — the
user still active, their current role, the idle and absolute limits — through a cache of at
most ``session_cache_seconds``. This server drops that cache at once when a user or key
changes through it (``Services.changes``) and forgets a session when it logs out, so a
logout, a lowered role, a disabled or deleted user take effect on the next request.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from splitlab.domain import Principal
from splitlab.store.versions import ACCESS
from splitlab.store.web_sessions import (
    check_web_session,
    create_web_session,
    delete_web_session,
    token_digest,
)

if TYPE_CHECKING:
    from splitlab.services import Services

COOKIE = "splitlab_session"


@dataclass(frozen=True)
class WebSession:
    csrf: str
    principal: Principal | None = None
    token: str | None = None
    """The store session's token (logged in), None for an anonymous visitor."""


class SessionChecks:
    """Session checks of this process by token digest, each reused for ``ttl`` seconds.

    Only valid sessions are kept (a login is found at once); ``clear`` and ``forget`` also
    discard a check that was loading meanwhile, so it cannot bring back what they removed.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.ttl = services.settings.session_cache_seconds
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._cleared_at = 0.0
        self._lock = threading.Lock()

    def principal(self, token: str) -> Principal | None:
        digest = token_digest(token)
        entry = self._entries.get(digest)
        started = time.monotonic()
        if entry is not None and started - entry[0] < self.ttl:
            return entry[1]
        settings = self.services.settings
        with self.services.sessions.begin() as session:
            principal = check_web_session(
                session=session,
                token=token,
                idle=timedelta(minutes=settings.session_idle_minutes),
            )
        with self._lock:
            if principal is None:
                self._entries.pop(digest, None)
            elif started >= self._cleared_at and self.ttl > 0:
                self._entries[digest] = (started, principal)
        return principal

    def forget(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token_digest(token), None)
            self._cleared_at = time.monotonic()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._cleared_at = time.monotonic()


def session_checks(services: Services) -> SessionChecks:
    """This process's ``SessionChecks``, cleared whenever users or keys change."""
    checks = services.session_checks
    if checks is None:
        checks = services.session_checks = SessionChecks(services)
        services.changes.subscribe(ACCESS, checks.clear)
    return checks


def _serializer(services: Services) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services.secret_key, salt="splitlab-session")


def _max_age(services: Services) -> int:
    return int(services.settings.session_max_days * 24 * 3600)


def read_session(request: Request, services: Services) -> WebSession | None:
    """The visitor's session (None without a valid cookie); ``principal`` is set only while
    the store session behind the cookie is valid. Blocking: it may query the store."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(services).loads(raw, max_age=_max_age(services))
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    token = data.get("sid")
    if not isinstance(token, str):
        return WebSession(csrf=data["csrf"])  # anonymous (or a cookie from before sessions)
    return WebSession(
        csrf=data["csrf"], principal=session_checks(services).principal(token), token=token
    )


def write_session(
    response: Response, services: Services, *, token: str | None = None, csrf: str | None = None
) -> WebSession:
    """Set the cookie: anonymous (a CSRF token only) or carrying a store session's token."""
    session = WebSession(csrf=csrf or secrets.token_urlsafe(24), token=token)
    response.set_cookie(
        COOKIE,
        _serializer(services).dumps({"csrf": session.csrf, "sid": token}),
        max_age=_max_age(services),
        httponly=True,
        samesite="lax",
        secure=False,  # served on loopback or behind a TLS proxy that sets its own policy
    )
    return session


def log_in(response: Response, services: Services, *, username: str) -> WebSession:
    """Start a store session for ``username`` and set its cookie (with a new CSRF token)."""
    lifetime = timedelta(days=services.settings.session_max_days)
    with services.sessions.begin() as session:
        token = create_web_session(session=session, username=username, lifetime=lifetime)
    return write_session(response, services, token=token)


def log_out(response: Response, services: Services, session: WebSession | None) -> None:
    """End the store session behind the cookie (for every copy of it) and make the cookie
    anonymous."""
    if session is not None and session.token is not None:
        with services.sessions.begin() as db:
            delete_web_session(session=db, token=session.token)
        session_checks(services).forget(session.token)
    write_session(response, services)


def csrf_matches(session: WebSession | None, token: str | None) -> bool:
    return bool(session and token and hmac.compare_digest(session.csrf, token))

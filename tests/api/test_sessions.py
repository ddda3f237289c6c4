"""Dashboard sessions live in the store: a logout, a lowered role, a disabled or deleted user
take effect on the next request, with the session cache on (its default ttl, 2 s)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from splitlab.api.sessions import COOKIE, session_checks
from splitlab.domain import Principal, Role
from splitlab.services import Services
from splitlab.store.tables import WebSessionRow
from splitlab.store.users import set_active, set_role
from splitlab.store.web_sessions import check_web_session, create_web_session
from tests.conftest import Keys


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def log_in(client: TestClient, username: str, password: str = "password-123") -> str:
    """Log in through the form; returns the session's CSRF token."""
    token = _csrf(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return _csrf(client.get("/").text)


def as_cookie(value: str) -> dict[str, str]:
    """A request header sending this session cookie instead of the client's own."""
    return {"cookie": f"{COOKIE}={value}"}


@pytest.fixture
def ada(client: TestClient, keys: Keys, admin: dict[str, str]) -> str:
    """A logged-in admin (``admin`` makes sure another admin exists)."""
    keys.user("ada", Role.ADMIN)
    return log_in(client, "ada")


def test_the_cache_is_on_in_these_tests(services: Services) -> None:
    assert services.settings.session_cache_seconds > 0


def test_a_lowered_role_applies_to_the_next_request(
    client: TestClient, services: Services, ada: str
) -> None:
    assert client.get("/api/users").status_code == 200
    with services.sessions.begin() as session:
        set_role(session=session, username="ada", role=Role.VIEWER, actor="test")
    denied = client.get("/api/users")
    assert denied.status_code == 403
    assert client.get("/api/experiments").status_code == 200  # still a viewer
    edit = client.post(
        "/api/metrics",
        json={"key": "m", "kind": "binary", "event": "e"},
        headers={"X-CSRF-Token": ada},
    )
    assert edit.status_code == 403


def test_a_disabled_user_is_logged_out_for_good(
    client: TestClient, services: Services, ada: str
) -> None:
    assert client.get("/api/experiments").status_code == 200
    with services.sessions.begin() as session:
        set_active(session=session, username="ada", active=False, actor="test")
    assert client.get("/api/experiments").status_code == 401
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/login"
    with services.sessions.begin() as session:
        set_active(session=session, username="ada", active=True, actor="test")
    # enabling does not bring the ended session back: the user logs in again
    assert client.get("/api/experiments").status_code == 401
    log_in(client, "ada")
    assert client.get("/api/experiments").status_code == 200


def test_a_deleted_user_is_refused_and_cannot_log_in(
    client: TestClient, admin: dict[str, str], ada: str
) -> None:
    assert client.get("/api/experiments").status_code == 200
    old_cookie = client.cookies[COOKIE]
    deleted = client.delete("/api/users/ada", headers=admin)
    assert deleted.status_code == 204
    assert client.get("/api/experiments", headers=as_cookie(old_cookie)).status_code == 401
    token = _csrf(client.get("/login").text)
    again = client.post(
        "/login", data={"username": "ada", "password": "password-123", "csrf_token": token}
    )
    assert again.status_code == 401


def test_logout_ends_the_session_for_every_copy_of_the_cookie(
    client: TestClient, services: Services, ada: str
) -> None:
    old_cookie = client.cookies[COOKIE]
    assert client.get("/api/users", headers=as_cookie(old_cookie)).status_code == 200
    out = client.post("/logout", data={"csrf_token": ada}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/api/users").status_code == 401
    # a copy of the cookie taken before the logout (another tab, a stolen cookie)
    client.cookies.clear()
    assert client.get("/api/users", headers=as_cookie(old_cookie)).status_code == 401
    with services.sessions() as session:
        assert session.scalars(select(WebSessionRow)).all() == []


def test_an_idle_session_ends(client: TestClient, services: Services, ada: str) -> None:
    assert client.get("/api/experiments").status_code == 200
    idle = datetime.now(UTC) - timedelta(minutes=services.settings.session_idle_minutes + 1)
    with services.sessions.begin() as session:
        session.execute(update(WebSessionRow).values(last_seen_at=idle))
    session_checks(services).clear()  # as after the cache's few seconds
    assert client.get("/api/experiments").status_code == 401
    with services.sessions() as session:
        assert session.scalars(select(WebSessionRow)).all() == []  # deleted when seen


def test_an_active_session_is_kept_alive(client: TestClient, services: Services, ada: str) -> None:
    earlier = datetime.now(UTC) - timedelta(minutes=services.settings.session_idle_minutes - 1)
    with services.sessions.begin() as session:
        session.execute(update(WebSessionRow).values(last_seen_at=earlier))
    session_checks(services).clear()
    assert client.get("/api/experiments").status_code == 200
    with services.sessions() as session:
        seen = session.scalars(select(WebSessionRow.last_seen_at)).one()
    seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
    assert datetime.now(UTC) - seen < timedelta(minutes=1)


def test_session_checks_idle_expiry_and_role(services: Services, keys: Keys) -> None:
    keys.user("sam", Role.EDITOR)
    start = datetime.now(UTC)
    with services.sessions.begin() as session:
        token = create_web_session(session=session, username="sam", lifetime=timedelta(days=1))
    idle = timedelta(minutes=30)

    def check(at: datetime) -> Principal | None:
        with services.sessions.begin() as session:
            return check_web_session(session=session, token=token, idle=idle, now=at)

    assert check(start + timedelta(minutes=29)) == Principal("sam", Role.EDITOR)
    # that check moved last_seen_at: 29 more minutes are fine, and so on until the day is over
    assert check(start + timedelta(minutes=58)) is not None
    assert check(start + timedelta(days=1)) is None  # expired, and deleted
    assert check(start + timedelta(minutes=59)) is None
    with services.sessions.begin() as session:
        other = create_web_session(session=session, username="sam", lifetime=timedelta(days=1))
        assert check_web_session(session=session, token="x" + other, idle=idle) is None
        assert (
            check_web_session(
                session=session, token=other, idle=idle, now=start + timedelta(minutes=31)
            )
            is None
        )


def test_a_cookie_from_before_server_side_sessions_grants_nothing(
    client: TestClient, services: Services, admin: dict[str, str]
) -> None:
    """The old cookie carried the user and role itself, valid for 14 days."""
    old = URLSafeTimedSerializer(services.secret_key, salt="splitlab-session").dumps(
        {"csrf": "t", "user": {"name": "alice", "role": "admin"}}
    )
    assert client.get("/api/users", headers=as_cookie(old)).status_code == 401


def test_a_second_server_sees_a_role_change_within_its_session_cache_ttl(
    client: TestClient, services: Services, ada: str
) -> None:
    """Another process (here: a second Services over the same store, ttl 0.2 s)."""
    import time

    from splitlab.app import create_app

    settings = services.settings.model_copy(
        update={"session_cache_seconds": 0.2, "home": services.settings.home / "b"}
    )
    other = Services.open(settings)
    cookie = client.cookies[COOKIE]
    with TestClient(create_app(services=other)) as second:
        assert second.get("/api/users", headers=as_cookie(cookie)).status_code == 200
        with services.sessions.begin() as session:
            set_role(session=session, username="ada", role=Role.EDITOR, actor="test")
        time.sleep(0.25)
        assert second.get("/api/users", headers=as_cookie(cookie)).status_code == 403

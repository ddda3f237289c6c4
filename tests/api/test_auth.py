"""Authentication and authorisation: API keys with scopes, cookie sessions with CSRF."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from splitlab.app import create_app
from splitlab.config import Settings
from splitlab.domain import Role, Scope
from splitlab.errors import ConfigurationError
from splitlab.services import Services
from tests.api.helpers import METRIC
from tests.conftest import Keys


def test_no_key_is_401(client: TestClient) -> None:
    response = client.get("/api/experiments")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_401(client: TestClient, admin: dict) -> None:
    forged = admin["Authorization"][:-4] + "AAAA"
    response = client.get("/api/experiments", headers={"Authorization": forged})
    assert response.status_code == 401
    garbage = client.get("/api/experiments", headers={"X-API-Key": "not-a-key"})
    assert garbage.status_code == 401


def test_scopes(client: TestClient, keys: Keys) -> None:
    ingest = keys.headers("pipeline", Role.ADMIN, Scope.INGEST)
    read = keys.headers("analyst", Role.ADMIN, Scope.READ)
    admin_scope = keys.headers("analyst", Role.ADMIN, Scope.ADMIN)
    assert client.get("/api/experiments", headers=ingest).status_code == 403
    assert client.get("/api/experiments", headers=read).status_code == 200
    assert client.post("/api/metrics", json=METRIC, headers=read).status_code == 403
    assert client.post("/api/metrics", json=METRIC, headers=ingest).status_code == 403
    assert client.post("/api/metrics", json=METRIC, headers=admin_scope).status_code == 201


def test_roles_limit_admin_scope_keys(client: TestClient, keys: Keys) -> None:
    viewer = keys.headers("vic", Role.VIEWER)
    assert client.get("/api/metrics", headers=viewer).status_code == 200
    denied = client.post("/api/metrics", json=METRIC, headers=viewer)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"


def test_revoked_key_is_401(client: TestClient, services: Services, keys: Keys) -> None:
    from splitlab.store.users import revoke_api_key

    headers = keys.headers("temp", Role.ADMIN)
    assert client.get("/api/metrics", headers=headers).status_code == 200
    prefix = headers["Authorization"].split("_")[1]
    with services.sessions.begin() as session:
        revoke_api_key(session=session, prefix=prefix, actor="test")
    assert client.get("/api/metrics", headers=headers).status_code == 401


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_login_form_and_csrf(client: TestClient, keys: Keys) -> None:
    keys.user("dana", Role.EDITOR, password="correct-horse")
    # a form post without the token is refused and logs nobody in
    no_token = client.post("/login", data={"username": "dana", "password": "correct-horse"})
    assert no_token.status_code == 403
    page = client.get("/login")
    token = _csrf(page.text)
    wrong = client.post(
        "/login", data={"username": "dana", "password": "nope", "csrf_token": token}
    )
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.text
    bad_token = client.post(
        "/login", data={"username": "dana", "password": "correct-horse", "csrf_token": "x" + token}
    )
    assert bad_token.status_code == 403
    ok = client.post(
        "/login",
        data={"username": "dana", "password": "correct-horse", "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    home = client.get("/")
    assert home.status_code == 200 and "dana" in home.text
    # the cookie reads the JSON API too
    assert client.get("/api/experiments").status_code == 200
    # a cookie-authenticated API write needs the session's CSRF token in a header
    session_token = _csrf(home.text)
    assert client.post("/api/metrics", json=METRIC).status_code == 403
    created = client.post("/api/metrics", json=METRIC, headers={"X-CSRF-Token": session_token})
    assert created.status_code == 201
    # logout is a form too
    assert client.post("/logout").status_code == 403
    out = client.post("/logout", data={"csrf_token": session_token}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/api/experiments").status_code == 401


def test_html_error_page(client: TestClient) -> None:
    response = client.get("/nowhere", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert "<h1>404" in response.text


def test_auth_off_is_local_admin_with_banner(services: Services) -> None:
    settings = services.settings.model_copy(update={"auth": "off", "host": "127.0.0.1"})
    services.settings = settings
    with TestClient(create_app(services=services)) as client:
        assert client.post("/api/metrics", json=METRIC).status_code == 201
        page = client.get("/")
        assert "Authentication is disabled" in page.text
        assert "local" in page.text


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_auth_off_refused_off_loopback(host: str) -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        Settings(auth="off", host=host).check_auth_binding()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_auth_off_allowed_on_loopback(host: str) -> None:
    Settings(auth="off", host=host).check_auth_binding()


def test_body_over_limit_is_413(services: Services, admin: dict) -> None:
    services.settings = services.settings.model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(services=services)) as client:
        response = client.post(
            "/api/metrics",
            content=b'{"key": "' + b"x" * 4096 + b'"}',
            headers=admin | {"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

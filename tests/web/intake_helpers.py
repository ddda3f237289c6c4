"""Helpers of the intake and calculator tests: log a test client in, read a page's CSRF token
and the error shown next to a field."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from splitlab.domain import Role
from tests.conftest import Keys


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1)


def log_in(client: TestClient, keys: Keys, username: str, role: Role) -> str:
    """Create ``username`` with ``role``, log the client in; returns the session's CSRF token."""
    keys.user(username, role)
    done = client.post(
        "/login",
        data={
            "username": username,
            "password": "password-123",
            "csrf_token": csrf_of(client.get("/login").text),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    return csrf_of(client.get("/calculator").text)


def field_error(page: str, name: str) -> str | None:
    """The error message shown under field ``name`` (its ``e-…`` element), if any."""
    ident = "e-" + name.replace(".", "-")
    found = re.search(rf'id="{re.escape(ident)}"[^>]*>(.*?)</p>', page, re.S)
    if not found:
        return None
    text = re.sub(r"<[^>]+>", "", found.group(1))
    return html.unescape(text).replace("⚠", "").strip()

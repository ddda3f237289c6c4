"""Shared set-up of the web tests over the demo organisation: a fresh SQLite store with some
demo experiments seeded and analysed, users, and clients logged in through the form."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from splitlab.app import create_app
from splitlab.config import Settings
from splitlab.domain import Role
from splitlab.services import Services
from splitlab.simulate.demo import EXPERIMENTS, seed_demo
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade
from splitlab.store.users import create_user

USERS = (("ada", Role.ADMIN), ("vic", Role.VIEWER), ("eve", Role.EDITOR))
PASSWORD = "password-123"


def open_demo(
    home: Path,
    keys: Iterable[str],
    *,
    users: Iterable[tuple[str, Role]] = USERS,
    **settings: Any,
) -> Services:
    """A fresh SQLite store under ``home`` (auth on) with the demo experiments ``keys`` seeded
    and analysed, and ``users`` (password ``PASSWORD``); ``settings`` are added to the
    store's ``Settings`` (e.g. ``scheduler_seconds=0``)."""
    config = Settings(
        home=home / "home",
        database_url=f"sqlite:///{home / 'app.db'}",
        secret_key="test-secret",
        auth="on",
        ingest_cache_seconds=0,
        **settings,
    )
    engine = make_engine(config.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    return seed(Services.open(config), keys, users)


def seed(
    services: Services, keys: Iterable[str], users: Iterable[tuple[str, Role]] = USERS
) -> Services:
    """The demo experiments ``keys`` seeded and analysed in ``services`` (any backend), and
    ``users`` (password ``PASSWORD``)."""
    wanted = set(keys)
    seed_demo(services, experiments=[e for e in EXPERIMENTS if e.key in wanted])
    with services.sessions.begin() as session:
        for name, role in users:
            create_user(session=session, username=name, password=PASSWORD, role=role)
    return services


def csrf_of(html: str) -> str:
    """The CSRF token of a page's form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def logged_in(services: Services, username: str) -> TestClient:
    """A client logged in as ``username`` through the login form."""
    client = TestClient(create_app(services=services))
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client

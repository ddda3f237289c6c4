"""Shared set-up of the ML views' tests: demo experiments with model, prompt and canary
payloads on SQLite with auth on, and logged-in clients."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from splitlab.app import create_app
from splitlab.config import Settings
from splitlab.domain import Role
from splitlab.services import Services
from splitlab.simulate.demo import EXPERIMENTS, seed_demo
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade
from splitlab.store.users import create_user

ML_KEYS = ("distilled-ranker", "support-prompt-steps", "payments-4-2-canary")
USERS = (("ada", Role.ADMIN), ("vic", Role.VIEWER), ("eve", Role.EDITOR))


def open_demo(home: Path, keys: tuple[str, ...] = ML_KEYS) -> Services:
    """A fresh SQLite store with these demo experiments seeded and analysed, and users."""
    settings = Settings(
        home=home / "home",
        database_url=f"sqlite:///{home / 'app.db'}",
        secret_key="test-secret",
        auth="on",
        ingest_cache_seconds=0,
        scheduler_seconds=0,
        analysis_refresh_seconds=0,
    )
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    services = Services.open(settings)
    seed_demo(services, experiments=[e for e in EXPERIMENTS if e.key in keys])
    with services.sessions.begin() as session:
        for name, role in USERS:
            create_user(session=session, username=name, password="password-123", role=role)
    return services


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def logged_in(services: Services, username: str) -> TestClient:
    client = TestClient(create_app(services=services))
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": "password-123", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client

"""Shared fixtures: every store test runs on SQLite and, when configured, on PostgreSQL.

PostgreSQL runs when SPLITLAB_TEST_DATABASE_URL is set. With CI=true an unreachable
server fails the PostgreSQL tests instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from splitlab.app import create_app
from splitlab.config import Settings
from splitlab.domain import Role, Scope
from splitlab.services import Services
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade
from splitlab.store.users import create_api_key, create_user

PG_URL = os.environ.get("SPLITLAB_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"


def postgres_available() -> str | None:
    """The reason PostgreSQL tests cannot run, or None when they can."""
    if not PG_URL:
        return "SPLITLAB_TEST_DATABASE_URL is not set"
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # the server is down or refuses us
        return f"PostgreSQL at {PG_URL} is unreachable: {exc}"
    return None


_PG_PROBLEM: str | None = None
_PG_CHECKED = False


def require_postgres() -> str:
    global _PG_PROBLEM, _PG_CHECKED
    if not _PG_CHECKED:
        _PG_PROBLEM, _PG_CHECKED = postgres_available(), True
    if _PG_PROBLEM:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL tests cannot run: {_PG_PROBLEM}")
        pytest.skip(_PG_PROBLEM)
    assert PG_URL
    return PG_URL


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    url = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}options=-csearch_path%3D{schema}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Extra settings for one test module: override this fixture there."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, settings_overrides: dict[str, Any]) -> Settings:
    """Auth on; on PostgreSQL the warehouse lives in the same fresh schema as the app store."""
    common: dict[str, Any] = {
        "home": tmp_path / "home",
        "database_url": database_url,
        "secret_key": "test-secret",
        "auth": "on",
        "ingest_cache_seconds": 0,  # every request sees the store as it is now
        "scheduler_seconds": 0,  # no background ticks: scheduler tests call tick(now=…)
    }
    if database_url.startswith("postgresql"):
        common["warehouse_url"] = database_url
    return Settings(**(common | settings_overrides))


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    opened = Services.open(settings)
    yield opened
    opened.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services)) as test_client:
        yield test_client


class Keys:
    """Users with each role and API keys for them, made on demand."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._made: dict[tuple[str, Scope], str] = {}

    def user(self, username: str, role: Role, password: str = "password-123") -> str:
        with self.services.sessions.begin() as session:
            create_user(session=session, username=username, password=password, role=role)
        return username

    def key(self, username: str, scope: Scope = Scope.ADMIN) -> str:
        with self.services.sessions.begin() as session:
            return create_api_key(session=session, username=username, scope=scope)

    def headers(self, username: str, role: Role, scope: Scope = Scope.ADMIN) -> dict[str, str]:
        cached = self._made.get((username, scope))
        if cached is None:
            with self.services.sessions() as session:
                from sqlalchemy import select

                from splitlab.store.tables import UserRow

                exists = session.scalar(select(UserRow.id).where(UserRow.username == username))
            if exists is None:
                self.user(username, role)
            cached = self._made[(username, scope)] = self.key(username, scope)
        return {"Authorization": f"Bearer {cached}"}


@pytest.fixture
def keys(services: Services) -> Keys:
    return Keys(services)


@pytest.fixture
def admin(keys: Keys) -> dict[str, str]:
    return keys.headers("alice", Role.ADMIN)


@pytest.fixture
def editor(keys: Keys) -> dict[str, str]:
    return keys.headers("ed", Role.EDITOR)


@pytest.fixture
def reviewer(keys: Keys) -> dict[str, str]:
    return keys.headers("rita", Role.REVIEWER)


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with production cost takes ~0.3 s a hash here; tests need the logic, not the cost."""
    from argon2 import PasswordHasher

    from splitlab.store import users

    monkeypatch.setattr(
        users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )

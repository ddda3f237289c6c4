"""Migrations run on SQLite and PostgreSQL; start-up refuses an outdated schema."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from splitlab.app import create_app
from splitlab.config import Settings
from splitlab.errors import SchemaOutdatedError
from splitlab.store.db import make_engine
from splitlab.store.migrate import check_current, head_revision, upgrade


def test_upgrade_creates_every_table(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(SchemaOutdatedError, match="splitlab init"):
        check_current(engine)
    assert upgrade(engine) == head_revision()
    assert upgrade(engine) == head_revision()  # idempotent
    assert check_current(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {
        "experiments",
        "variants",
        "metrics",
        "experiment_metrics",
        "audit_log",
        "notes",
        "review_requests",
        "reviews",
        "users",
        "api_keys",
    } <= tables
    engine.dispose()


def test_server_refuses_unmigrated_store(settings: Settings) -> None:
    with pytest.raises(SchemaOutdatedError, match="run `splitlab init`"):
        create_app(settings)

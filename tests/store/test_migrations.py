"""Migrations run on SQLite and PostgreSQL, create exactly the tables the models declare,
match the models column for column, and go down and up again; start-up refuses an outdated
schema."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from splitlab.app import create_app
from splitlab.config import Settings
from splitlab.errors import SchemaOutdatedError
from splitlab.store.db import make_engine
from splitlab.store.migrate import (
    MIGRATIONS,
    alembic_config,
    check_current,
    current_revision,
    head_revision,
    upgrade,
)
from splitlab.store.tables import Base

MODEL_TABLES = set(Base.metadata.tables)


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def model_differences(engine: Engine) -> list[Any]:
    """What ``alembic check`` would find: how the migrated schema differs from the models
    (tables, columns, types, nullability, server defaults, indexes, unique and foreign keys)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_creates_every_table(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(SchemaOutdatedError, match="splitlab init"):
        check_current(engine)
    assert upgrade(engine) == head_revision()
    assert upgrade(engine) == head_revision()  # idempotent
    assert check_current(engine) == head_revision()
    assert tables(engine) == MODEL_TABLES
    assert {
        "experiments",
        "variants",
        "metrics",
        "metric_versions",
        "experiment_metrics",
        "audit_log",
        "notes",
        "review_requests",
        "reviews",
        "users",
        "api_keys",
        "web_sessions",
        "cache_versions",
        "analysis_snapshots",
        "policies",
        "recommendations",
        "decisions",
        "ramps",
        "scheduler_state",
        "webhook_deliveries",
    } == MODEL_TABLES
    engine.dispose()


def test_the_models_match_the_migrations(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    assert model_differences(engine) == []
    engine.dispose()


def test_every_migration_goes_down_and_up_again(database_url: str) -> None:
    """upgrade → downgrade → upgrade, one revision at a time and all the way to an empty
    store; each downgrade leaves exactly the tables of its revision."""
    engine = make_engine(database_url)
    config = alembic_config(engine)
    upgrade(engine)
    script = ScriptDirectory(str(MIGRATIONS))
    revisions = list(script.walk_revisions())  # newest first
    tables_at = {revisions[0].revision: tables(engine)}
    for revision in revisions:
        command.downgrade(config, "-1")
        assert current_revision(engine) == revision.down_revision
        if revision.down_revision is not None:
            tables_at[revision.down_revision] = tables(engine)
    assert tables(engine) == set()
    for revision in reversed(revisions):
        command.upgrade(config, revision.revision)
        assert tables(engine) == tables_at[revision.revision]
    command.downgrade(config, "base")
    assert tables(engine) == set()
    assert upgrade(engine) == head_revision()
    assert tables(engine) == MODEL_TABLES
    assert model_differences(engine) == []
    engine.dispose()


def test_server_refuses_unmigrated_store(settings: Settings) -> None:
    with pytest.raises(SchemaOutdatedError, match="run `splitlab init`"):
        create_app(settings)

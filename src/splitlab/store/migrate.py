"""Alembic, driven from code: ``upgrade`` for ``splitlab init``, ``check_current`` at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from splitlab.errors import SchemaOutdatedError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Create or migrate the app store to the newest schema; returns the revision."""
    command.upgrade(alembic_config(engine), "head")
    return head_revision()


def check_current(engine: Engine) -> str:
    """Raise ``SchemaOutdatedError`` with the fix unless the schema is at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaOutdatedError(
            f"the app store is {state}, the code expects {head}: run `splitlab init` to migrate",
            details={"current": current, "head": head},
        )
    return head

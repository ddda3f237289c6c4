"""The composition root's state: settings and connections, built once per app or CLI run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from splitlab.config import Settings
from splitlab.store.db import make_engine, session_factory
from splitlab.store.migrate import check_current


@dataclass
class Services:
    """What request handlers and CLI commands need; later issues add the warehouse here."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secret_key: str
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, *, check_schema: bool = True) -> Services:
        """Connect to the app store; refuse (with the fix) when its schema is not current."""
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url())
        if check_schema:
            check_current(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            secret_key=settings.resolved_secret_key(),
        )

    def close(self) -> None:
        self.engine.dispose()

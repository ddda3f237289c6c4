"""The composition root's state: settings and connections, built once per app or CLI run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from splitlab.config import Settings
from splitlab.store.db import make_engine, session_factory
from splitlab.store.migrate import check_current
from splitlab.store.versions import ChangeFeed

if TYPE_CHECKING:
    from splitlab.warehouse import Warehouse


@dataclass
class Services:
    """What request handlers and CLI commands need; later issues add the warehouse here."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secret_key: str
    extras: dict[str, Any] = field(default_factory=dict)
    _warehouse: Warehouse | None = field(default=None, repr=False)
    changes: ChangeFeed = field(init=False, repr=False)
    """What this process's commits changed: caches subscribe to drop stale entries."""

    def __post_init__(self) -> None:
        self.changes = ChangeFeed(self.sessions)

    @property
    def warehouse(self) -> Warehouse:
        """The event warehouse, opened on first use (so CLI commands that do not need it never
        touch the DuckDB file a running server owns)."""
        if self._warehouse is None:
            from splitlab.warehouse import Warehouse, load_sources

            s = self.settings
            self._warehouse = Warehouse.open(
                s.resolved_warehouse_url(),
                max_batch_items=s.group_commit_max_items,
                max_wait_seconds=s.group_commit_wait_ms / 1000,
                sources=load_sources(s.warehouse_sources),
            )
        return self._warehouse

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
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
        self.engine.dispose()

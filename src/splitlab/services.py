"""The composition root's state: settings and connections, built once per app or CLI run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from splitlab.config import Settings
from splitlab.store.db import make_engine, session_factory
from splitlab.store.migrate import check_current
from splitlab.store.versions import ChangeFeed

if TYPE_CHECKING:
    from splitlab.api.assign import ExposureBuffer
    from splitlab.api.caches import Allocations, Refreshing, StoreVersions
    from splitlab.api.sessions import SessionChecks
    from splitlab.domain import Principal
    from splitlab.domain.summary import ExperimentSummary
    from splitlab.warehouse import Warehouse
    from splitlab.warehouse.importer import ImportReport


@dataclass
class Services:
    """What request handlers and CLI commands need: settings, the app store, the warehouse
    (opened on first use) and, in a server, its process caches."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secret_key: str
    _warehouse: Warehouse | None = field(default=None, repr=False)
    changes: ChangeFeed = field(init=False, repr=False)
    """What this process's commits changed: caches subscribe to drop stale entries."""

    # A server process's caches, each created on first use by the module that owns it.
    allocations: Allocations | None = field(default=None, init=False, repr=False)
    """Live assignment configs (``api.caches.allocations_of``)."""
    exposure_buffer: ExposureBuffer | None = field(default=None, init=False, repr=False)
    """``/api/assign``'s exposures on their way to the writer (``api.assign``)."""
    experiment_cache: Refreshing[ExperimentSummary | None] | None = field(
        default=None, init=False, repr=False
    )
    """Experiment summaries for ingestion (``api.ingest.experiment_cache``)."""
    api_key_cache: Refreshing[Principal] | None = field(default=None, init=False, repr=False)
    """API-key principals (``api.caches.principal_cache``)."""
    store_versions: StoreVersions | None = field(default=None, init=False, repr=False)
    """The store's cache versions as last polled (``api.caches.store_versions``)."""
    session_checks: SessionChecks | None = field(default=None, init=False, repr=False)
    """Dashboard session checks (``api.sessions.session_checks``)."""

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

    def import_file(
        self,
        path: Path,
        *,
        kind: str,
        mapping: dict[str, str] | None = None,
        write: bool = True,
        preview_rows: int = 0,
    ) -> ImportReport:
        """Validate and import a file of exposures or events against every experiment in
        the app store (``Warehouse.import_file``). When a running server owns the DuckDB file
        (a CLI command), the valid rows go through that server (``splitlab.remote``)."""
        from splitlab.store.live import experiment_summaries
        from splitlab.warehouse import WarehouseBusyError

        with self.sessions() as session:
            experiments = experiment_summaries(session=session)
        try:
            report: ImportReport = self.warehouse.import_file(
                path,
                kind=kind,
                experiments=experiments,
                mapping=mapping,
                write=write,
                preview_rows=preview_rows,
            )
        except WarehouseBusyError:  # a running server owns the DuckDB file: go through it
            from splitlab.remote import import_via_server

            return import_via_server(
                self.settings,
                path,
                kind=kind,
                experiments=experiments,
                mapping=mapping,
                write=write,
                preview_rows=preview_rows,
            )
        return report

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

"""Cache versions: how every server process learns that cached app state changed.

Server processes cache what their hot paths read (experiment summaries, live assignment
configs, API-key checks, dashboard sessions). A ``ChangeFeed`` watches the sessions of one
``Services``: when a transaction changed a watched table, it

* bumps that group's counter in ``cache_versions`` in the same transaction, so other
  processes (another server worker, the CLI) see the change on their next poll of
  ``read_versions`` — one cheap query, made at most once per cache ttl;
* after the commit, calls this process's subscribers at once (they drop their caches), so
  a change made through this server takes effect on its very next request.

Writes through SQLAlchemy sessions are seen whichever code path makes them (API, CLI,
background jobs); only SQL run outside Splitlab bypasses the counter, and is picked up when
the caches' ttl expires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, event, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from splitlab.store.tables import CacheVersionRow

log = logging.getLogger(__name__)

EXPERIMENTS = "experiments"
"""Experiments, variants, their metric links and metric definitions."""
ACCESS = "access"
"""Users and API keys."""

WATCHED: dict[str, str] = {
    "experiments": EXPERIMENTS,
    "variants": EXPERIMENTS,
    "experiment_metrics": EXPERIMENTS,
    "metrics": EXPERIMENTS,
    "users": ACCESS,
    "api_keys": ACCESS,
}
"""Table name -> the group whose counter a change to it bumps."""

_TABLE = cast(Table, CacheVersionRow.__table__)
_CHANGED = "splitlab_changed_groups"


def read_versions(connection: Connection) -> dict[str, int]:
    """Every group's counter (cheap: one row per group)."""
    rows = connection.execute(select(_TABLE.c.name, _TABLE.c.version))
    return {name: version for name, version in rows}


def bump_versions(connection: Connection, groups: Iterable[str]) -> None:
    """Add one to each group's counter (creating a missing row)."""
    for group in sorted(groups):  # one order everywhere: no deadlock between two writers
        bumped = connection.execute(
            update(_TABLE).where(_TABLE.c.name == group).values(version=_TABLE.c.version + 1)
        )
        if bumped.rowcount == 0:
            connection.execute(insert(_TABLE).values(name=group, version=1))


def _groups_of(objects: Iterable[Any]) -> set[str]:
    groups = set()
    for obj in objects:
        table = getattr(type(obj), "__tablename__", None)
        if table in WATCHED:
            groups.add(WATCHED[table])
    return groups


class ChangeFeed:
    """Bumps the counters of what a transaction changed; tells local subscribers on commit."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._subscribers: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.Lock()
        event.listen(sessions, "after_flush", self._after_flush)
        event.listen(sessions, "do_orm_execute", self._on_execute)
        event.listen(sessions, "before_commit", self._before_commit)
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", self._after_rollback)

    def subscribe(self, group: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the committing thread) whenever ``group`` changed: after a
        commit in this process, or when ``notify`` reports a change seen in the store."""
        with self._lock:
            self._subscribers.setdefault(group, []).append(callback)

    def notify(self, groups: Iterable[str]) -> None:
        for group in groups:
            with self._lock:
                callbacks = list(self._subscribers.get(group, ()))
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # a cache that cannot clear must not fail the commit
                    log.exception("cache invalidation for %r failed", group)

    # ------------------------------------------------------------ session events

    @staticmethod
    def _mark(session: Session, groups: set[str]) -> None:
        if groups:
            session.info.setdefault(_CHANGED, set()).update(groups)

    def _after_flush(self, session: Session, _context: Any) -> None:
        self._mark(session, _groups_of([*session.new, *session.dirty, *session.deleted]))

    def _on_execute(self, state: ORMExecuteState) -> None:
        if state.is_update or state.is_delete or state.is_insert:
            mapper = state.bind_mapper
            table = getattr(mapper, "local_table", None) if mapper is not None else None
            name = getattr(table, "name", None)
            if name in WATCHED:
                self._mark(state.session, {WATCHED[name]})

    def _before_commit(self, session: Session) -> None:
        session.flush()  # what the commit would flush, marked now: the bump goes last
        groups = session.info.get(_CHANGED)
        if groups:
            bump_versions(session.connection(), groups)

    def _after_commit(self, session: Session) -> None:
        groups = session.info.pop(_CHANGED, None)
        if groups:
            self.notify(groups)

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(_CHANGED, None)


def current_versions(engine: Engine) -> dict[str, int]:
    """``read_versions`` on a short connection of its own."""
    with engine.connect() as connection:
        return read_versions(connection)

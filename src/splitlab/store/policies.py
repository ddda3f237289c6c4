"""Stored decision policies: partial YAML/JSON documents named ``default``, ``team-{team}``
or ``experiment-{key}``; every write is audited (entity ``policy``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from splitlab.domain import Principal
from splitlab.store.audit import write_audit
from splitlab.store.tables import PolicyRow


def get_policy(*, session: Session, name: str) -> PolicyRow | None:
    """The stored policy ``name``, or None."""
    return session.get(PolicyRow, name)


def get_policies(*, session: Session, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The documents of those of ``names`` that are stored, by name (one query)."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    rows = session.scalars(select(PolicyRow).where(PolicyRow.name.in_(wanted)))
    return {row.name: dict(row.document) for row in rows}


def list_policies(*, session: Session) -> list[PolicyRow]:
    """Every stored policy, by name."""
    return list(session.scalars(select(PolicyRow).order_by(PolicyRow.name)))


def put_policy(
    *, session: Session, name: str, document: dict[str, Any], actor: Principal
) -> PolicyRow:
    """Create or replace stored policy ``name`` (the caller validated ``document``); audited
    with the previous and new documents.

    Concurrent writers of one name are serialised: the row is created if missing (an insert
    that ignores a conflict, version 0 until filled in) and locked (a no-op update: PostgreSQL's
    row lock, SQLite's write lock) before it is read, so each write reads the one before it —
    32 simultaneous PUTs gave version 20 and audited stale "before" documents, and two first
    writes on PostgreSQL could collide on the primary key."""
    table = cast(Table, PolicyRow.__table__)
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    connection = session.connection()
    connection.execute(
        insert(table)
        .values(name=name, document={}, version=0, updated_by=actor.username)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    connection.execute(update(table).where(table.c.name == name).values(version=table.c.version))
    row = session.get(PolicyRow, name)
    assert row is not None  # inserted or present above, and locked
    session.refresh(row)  # a row this session loaded before the lock may be stale
    before = dict(row.document) if row.version > 0 else None
    row.document = document
    row.version = row.version + 1
    row.updated_by = actor.username
    row.updated_at = datetime.now(UTC)
    session.flush()
    write_audit(
        session=session,
        entity="policy",
        entity_key=name,
        action="create" if before is None else "update",
        actor=actor.username,
        reason=f"policy {name} version {row.version}",
        changes={"before": before, "after": document},
    )
    return row


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes: they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def policy_to_dict(row: PolicyRow) -> dict[str, Any]:
    """The stored form: name, the partial document, version, who and when."""
    return {
        "name": row.name,
        "document": row.document,
        "version": row.version,
        "updated_by": row.updated_by,
        "updated_at": _aware(row.updated_at).isoformat() if row.updated_at else None,
    }

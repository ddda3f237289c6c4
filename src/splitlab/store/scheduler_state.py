"""The scheduler's durable state: a lease (one runner across server processes) and cursors.

A lease is a ``scheduler_state`` row ``(name, owner, expires_at)``. It is taken or renewed by
one conditional update — ``… SET owner = me, expires_at = now + ttl WHERE name = ? AND
(owner IS NULL OR owner = me OR expires_at < now)`` — so of several processes asking at
once exactly one holds it, and a process that died (kill -9) loses it once it expires.
Cursors (e.g. the last audit entry turned into webhook deliveries) live in the JSON
``value`` of their own rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from splitlab.errors import ConflictError
from splitlab.store.tables import SchedulerStateRow


def _ensure_row(session: Session, name: str, now: datetime) -> None:
    """Create row ``name`` when missing; a concurrent creator wins harmlessly."""
    if session.get(SchedulerStateRow, name) is not None:
        return
    try:
        with session.begin_nested():
            session.add(SchedulerStateRow(name=name, updated_at=now))
    except IntegrityError:
        pass  # another process created it first


def acquire_lease(
    *, session: Session, name: str, owner: str, ttl_seconds: float, now: datetime | None = None
) -> bool:
    """Take or renew lease ``name`` for ``owner`` until ``now + ttl``; False when another
    owner holds an unexpired lease (``ConflictError`` when the store is busy). Commit the
    session for the lease to count elsewhere."""
    moment = now or datetime.now(UTC)
    try:
        _ensure_row(session, name, moment)
        result = session.execute(
            update(SchedulerStateRow)
            .where(
                SchedulerStateRow.name == name,
                or_(
                    SchedulerStateRow.owner.is_(None),
                    SchedulerStateRow.owner == owner,
                    SchedulerStateRow.expires_at.is_(None),
                    SchedulerStateRow.expires_at < moment,
                ),
            )
            .values(
                owner=owner, expires_at=moment + timedelta(seconds=ttl_seconds), updated_at=moment
            )
            .execution_options(synchronize_session=False)
        )
    except OperationalError as exc:  # SQLite: another process held the write lock too long
        raise ConflictError("the app store is busy: lease not taken") from exc
    return getattr(result, "rowcount", 0) == 1


def release_lease(*, session: Session, name: str, owner: str) -> bool:
    """Give lease ``name`` up, if ``owner`` holds it (a clean shutdown: the next runner need
    not wait for it to expire)."""
    result = session.execute(
        update(SchedulerStateRow)
        .where(SchedulerStateRow.name == name, SchedulerStateRow.owner == owner)
        .values(owner=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def lease_holder(*, session: Session, name: str) -> tuple[str | None, datetime | None]:
    """Who holds lease ``name`` and until when (``None, None`` when nobody ever did)."""
    row = session.get(SchedulerStateRow, name, populate_existing=True)
    if row is None:
        return None, None
    expires = row.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return row.owner, expires


def read_value(*, session: Session, name: str) -> dict[str, Any]:
    """The JSON value of state row ``name`` (empty when missing)."""
    row = session.get(SchedulerStateRow, name, populate_existing=True)
    return dict(row.value or {}) if row is not None else {}


def write_value(
    *, session: Session, name: str, value: dict[str, Any], now: datetime | None = None
) -> None:
    """Replace the JSON value of state row ``name`` (created when missing)."""
    moment = now or datetime.now(UTC)
    _ensure_row(session, name, moment)
    session.execute(
        update(SchedulerStateRow)
        .where(SchedulerStateRow.name == name)
        .values(value=value, updated_at=moment)
        .execution_options(synchronize_session=False)
    )

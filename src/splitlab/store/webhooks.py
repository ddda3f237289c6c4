"""The webhook outbox: notifications to deliver, retried with back-off until delivered.

Events come from the audit log (read past a cursor by id) and are enqueued once per
``event_id`` (a unique column: enqueueing the same event again does nothing). A sender claims
a due delivery by a conditional update that pushes its ``next_attempt_at`` past the
attempt's timeout, so two senders never post the same delivery at once, and a sender that
dies mid-attempt leaves it to be retried.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from splitlab.store.tables import AuditRow, WebhookDeliveryRow

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
"""A delivery's states: ``pending`` until a 2xx answer (``delivered``) or its last attempt
failed (``failed``)."""


def audit_after(*, session: Session, after_id: int, limit: int = 500) -> list[AuditRow]:
    """Audit entries with an id above ``after_id``, oldest first, at most ``limit``."""
    return list(
        session.scalars(
            select(AuditRow).where(AuditRow.id > after_id).order_by(AuditRow.id).limit(limit)
        )
    )


def newest_audit_id(*, session: Session) -> int:
    """The id of the newest audit entry (0 when there is none)."""
    return int(session.scalar(select(func.max(AuditRow.id))) or 0)


def enqueue(
    *,
    session: Session,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    now: datetime | None = None,
) -> bool:
    """Add a delivery unless one with ``event_id`` exists; True when added."""
    if session.scalar(select(WebhookDeliveryRow.id).where(WebhookDeliveryRow.event_id == event_id)):
        return False
    moment = now or datetime.now(UTC)
    try:
        with session.begin_nested():
            session.add(
                WebhookDeliveryRow(
                    event_id=event_id,
                    event_type=event_type,
                    payload=payload,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=moment,
                    created_at=moment,
                )
            )
    except IntegrityError:
        return False  # enqueued concurrently
    return True


def due_deliveries(*, session: Session, now: datetime, limit: int = 50) -> list[WebhookDeliveryRow]:
    """Pending deliveries whose next attempt is due, oldest first."""
    return list(
        session.scalars(
            select(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.status == PENDING, WebhookDeliveryRow.next_attempt_at <= now)
            .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
            .limit(limit)
        )
    )


def claim(
    *, session: Session, delivery_id: int, attempts: int, now: datetime, hold_seconds: float
) -> bool:
    """Take delivery ``delivery_id`` for one attempt: only if it is still pending at
    ``attempts`` attempts and due; its next attempt moves ``hold_seconds`` ahead meanwhile."""
    result = session.execute(
        update(WebhookDeliveryRow)
        .where(
            WebhookDeliveryRow.id == delivery_id,
            WebhookDeliveryRow.status == PENDING,
            WebhookDeliveryRow.attempts == attempts,
            WebhookDeliveryRow.next_attempt_at <= now,
        )
        .values(attempts=attempts + 1, next_attempt_at=now + timedelta(seconds=hold_seconds))
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def record_attempt(
    *,
    session: Session,
    delivery_id: int,
    delivered: bool,
    error: str = "",
    retry_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Record an attempt's outcome: delivered; or failed, retried at ``retry_at`` (``None``:
    no attempts left, the delivery is ``failed``)."""
    moment = now or datetime.now(UTC)
    values: dict[str, Any]
    if delivered:
        values = {"status": DELIVERED, "delivered_at": moment, "last_error": ""}
    elif retry_at is None:
        values = {"status": FAILED, "last_error": error[:2000]}
    else:
        values = {"last_error": error[:2000], "next_attempt_at": retry_at}
    session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.id == delivery_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def delivery_counts(*, session: Session) -> dict[str, int]:
    """How many deliveries are in each state."""
    rows = session.execute(
        select(WebhookDeliveryRow.status, func.count()).group_by(WebhookDeliveryRow.status)
    )
    return {status: count for status, count in rows}

"""The audit log: one entry per mutation, with actor, reason and a configuration snapshot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from splitlab.store.tables import AuditRow


def write_audit(
    *,
    session: Session,
    entity: str,
    entity_key: str,
    action: str,
    actor: str,
    reason: str = "",
    from_status: str | None = None,
    to_status: str | None = None,
    changes: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    via: str | None = None,
    at: datetime | None = None,
) -> AuditRow:
    """Add one audit entry; ``at`` back-dates it (seeded demo history), default now."""
    row = AuditRow(
        entity=entity,
        entity_key=entity_key,
        action=action,
        actor=actor,
        reason=reason,
        from_status=from_status,
        to_status=to_status,
        changes=changes,
        snapshot=snapshot,
        via=via,
    )
    if at is not None:
        row.at = at
    session.add(row)
    return row


def list_audit(
    *, session: Session, entity: str, entity_key: str, limit: int = 500
) -> list[AuditRow]:
    """Entries for one entity, newest first."""
    query = (
        select(AuditRow)
        .where(AuditRow.entity == entity, AuditRow.entity_key == entity_key)
        .order_by(AuditRow.at.desc(), AuditRow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def summarize(row: AuditRow) -> str:
    """One line a person reads: ``created``, ``review → running``, ``approved (via …)``."""
    if row.action == "transition":
        text = f"{row.from_status} → {row.to_status}"
    else:
        # note, update, approval voided, metric changed: the action in words
        text = _LABELS.get(row.action, row.action.replace("_", " "))
        if row.from_status and row.to_status and row.from_status != row.to_status:
            text += f" ({row.from_status} → {row.to_status})"
    return f"{text} (via {row.via})" if row.via else text


_LABELS = {
    "create": "created",
    "clone": "created",
    "delete": "deleted",
    "review_approve": "approved",
    "review_request_changes": "changes requested",
}


def audit_to_dict(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "entity": row.entity,
        "key": row.entity_key,
        "action": row.action,
        "actor": row.actor,
        "at": (row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)).isoformat(),
        "from": row.from_status,
        "to": row.to_status,
        "reason": row.reason,
        "changes": row.changes,
        "snapshot": row.snapshot,
        "via": row.via,
        "summary": summarize(row),
    }

"""Metric definitions in the app store."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from splitlab.domain import MetricDefinition, Principal
from splitlab.errors import NotFoundError
from splitlab.store.audit import write_audit
from splitlab.store.tables import MetricRow

FIELDS = tuple(MetricDefinition.model_fields)


def metric_from_row(row: MetricRow) -> MetricDefinition:
    return MetricDefinition.model_validate({name: getattr(row, name) for name in FIELDS})


def get_metric(*, session: Session, key: str) -> MetricRow:
    row = session.scalar(select(MetricRow).where(MetricRow.key == key))
    if row is None:
        raise NotFoundError(f"no metric {key!r}", details={"key": key})
    return row


def list_metrics(*, session: Session) -> list[MetricRow]:
    return list(session.scalars(select(MetricRow).order_by(MetricRow.key)))


def missing_metrics(*, session: Session, keys: Iterable[str]) -> list[str]:
    wanted = set(keys)
    if not wanted:
        return []
    found = set(session.scalars(select(MetricRow.key).where(MetricRow.key.in_(wanted))))
    return sorted(wanted - found)


def upsert_metric(
    *, session: Session, definition: MetricDefinition, actor: Principal
) -> tuple[MetricRow, bool]:
    """Create or replace a metric definition; returns (row, created)."""
    row = session.scalar(select(MetricRow).where(MetricRow.key == definition.key))
    values = definition.model_dump(mode="json")
    created = row is None
    if row is None:
        row = MetricRow(**values)
        session.add(row)
        changes = None
    else:
        before = metric_from_row(row).model_dump(mode="json")
        changes = {
            k: {"before": before[k], "after": v} for k, v in values.items() if before[k] != v
        }
        if not changes:
            return row, False
        for name, value in values.items():
            setattr(row, name, value)
    write_audit(
        session=session,
        entity="metric",
        entity_key=definition.key,
        action="create" if created else "update",
        actor=actor.username,
        changes=changes,
        snapshot=values,
    )
    session.flush()
    return row, created

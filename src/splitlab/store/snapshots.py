"""Analysis snapshots in the app store: save, find by cache key, latest per experiment."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from splitlab.store.tables import SnapshotRow


def save_snapshot(
    *,
    session: Session,
    key: str,
    settings_hash: str,
    watermark: str,
    payload: dict[str, Any],
    duration_ms: float,
    status: str = "ok",
) -> SnapshotRow:
    """Store one analysis result; the newest row per experiment is its current result."""
    row = SnapshotRow(
        experiment_key=key,
        settings_hash=settings_hash,
        watermark=watermark,
        payload=payload,
        duration_ms=duration_ms,
        status=status,
    )
    session.add(row)
    session.flush()
    return row


def latest_snapshot(*, session: Session, key: str) -> SnapshotRow | None:
    """The most recent snapshot of an experiment, or None."""
    return session.scalar(
        select(SnapshotRow)
        .where(SnapshotRow.experiment_key == key)
        .order_by(SnapshotRow.id.desc())
        .limit(1)
    )


def find_snapshot(
    *, session: Session, key: str, settings_hash: str, watermark: str
) -> SnapshotRow | None:
    """The newest snapshot computed with exactly these settings on exactly this data."""
    return session.scalar(
        select(SnapshotRow)
        .where(
            SnapshotRow.experiment_key == key,
            SnapshotRow.settings_hash == settings_hash,
            SnapshotRow.watermark == watermark,
        )
        .order_by(SnapshotRow.id.desc())
        .limit(1)
    )

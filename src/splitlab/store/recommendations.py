"""Stored recommendations: one row each time an experiment's recommendation changes (code,
variant or segments), so the rows are its history; the newest row is the current one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, array
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from splitlab.store.tables import RecommendationRow, SnapshotRow


def save_recommendation(
    *,
    session: Session,
    key: str,
    snapshot_id: int | None,
    policy_hash: str,
    code: str,
    payload: dict[str, Any],
) -> RecommendationRow:
    """Store one recommendation (``payload``: its JSON form, plus ``context`` — the
    experiment's status when it was made, part of the cache key)."""
    row = RecommendationRow(
        experiment_key=key,
        snapshot_id=snapshot_id,
        policy_hash=policy_hash,
        code=code,
        payload=payload,
    )
    session.add(row)
    session.flush()
    return row


def update_recommendation(
    *,
    session: Session,
    row_id: int,
    snapshot_id: int | None,
    policy_hash: str,
    payload: dict[str, Any],
) -> None:
    """Refresh the numbers of a stored recommendation whose code, variant and segments did not
    change (a newer snapshot or policy): no new history row."""
    row = session.get(RecommendationRow, row_id)
    if row is None:
        return
    row.snapshot_id = snapshot_id
    row.policy_hash = policy_hash
    row.payload = payload


def latest_recommendation(*, session: Session, key: str) -> RecommendationRow | None:
    """The newest stored recommendation of experiment ``key``, or None."""
    return session.scalar(
        select(RecommendationRow)
        .where(RecommendationRow.experiment_key == key)
        .order_by(RecommendationRow.id.desc())
        .limit(1)
    )


def latest_recommendations(
    *, session: Session, keys: Iterable[str] | None = None
) -> dict[str, RecommendationRow]:
    """The newest stored recommendation per experiment (of ``keys``, or all), in one query."""
    newest = select(
        RecommendationRow.experiment_key, func.max(RecommendationRow.id).label("id")
    ).group_by(RecommendationRow.experiment_key)
    if keys is not None:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        newest = newest.where(RecommendationRow.experiment_key.in_(wanted))
    ids = newest.subquery()
    rows = session.scalars(select(RecommendationRow).join(ids, RecommendationRow.id == ids.c.id))
    return {row.experiment_key: row for row in rows}


def recommendation_history(
    *, session: Session, key: str, limit: int = 100
) -> list[RecommendationRow]:
    """Experiment ``key``'s recommendations, newest first."""
    return list(
        session.scalars(
            select(RecommendationRow)
            .where(RecommendationRow.experiment_key == key)
            .order_by(RecommendationRow.id.desc())
            .limit(limit)
        )
    )


SERIES_KEYS = ("daily", "exposure_days", "exposure_day_trends")
"""A snapshot's series by day (cumulative, and since exposure): most of its size, and never
read by the decision engine."""


def latest_snapshot_texts(
    *, session: Session, keys: Iterable[str], without: tuple[str, ...] = SERIES_KEYS
) -> dict[str, tuple[int, str]]:
    """The newest stored snapshot per experiment of ``keys`` as ``(id, JSON text)``, with the
    top-level keys ``without`` removed by the database (one query; the decision engine does
    not read the series by day, most of a snapshot). Numbers keep their stored text (SQLite's
    ``json_remove`` and PostgreSQL's ``jsonb``)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    newest = (
        select(SnapshotRow.experiment_key, func.max(SnapshotRow.id).label("id"))
        .where(SnapshotRow.experiment_key.in_(wanted))
        .group_by(SnapshotRow.experiment_key)
        .subquery()
    )
    dialect = session.get_bind().dialect.name
    text: ColumnElement[Any]
    if dialect == "postgresql":
        removed = cast(array(list(without)), ARRAY(Text))
        text = cast(cast(SnapshotRow.payload, JSONB).op("-")(removed), Text)
    elif dialect == "sqlite":
        text = func.json_remove(SnapshotRow.payload, *[f"$.{key}" for key in without])
    else:  # pragma: no cover - the two supported backends are above
        text = cast(SnapshotRow.payload, Text)
    rows = session.execute(
        select(SnapshotRow.experiment_key, SnapshotRow.id, text).join(
            newest, SnapshotRow.id == newest.c.id
        )
    )
    return {key: (row_id, str(body)) for key, row_id, body in rows}

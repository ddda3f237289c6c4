"""Cheap reads for the fleet view: only the columns its cards, lists and charts need.

Queries run on the session's connection as Core statements (no ORM identity map: three
times faster for these column lists), inside the session's transaction. Nothing here loads
an experiment's variants or metric links, and snapshot payloads are
read only for the snapshot ids the caller does not already hold a summary of
(``web.fleet_model`` keeps one per stored snapshot id, which never changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from splitlab.store.tables import AuditRow, DecisionRow, ExperimentRow, RampRow, SnapshotRow

_CHUNK = 500
"""Ids per ``IN (…)`` list: well under every backend's bound-parameter limit."""
_T = TypeVar("_T")


def aware(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands them back naive)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def chunks(items: Sequence[_T]) -> Iterable[list[_T]]:
    """``items`` in lists short enough for one ``IN (…)``."""
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def newest_snapshot_ids(*, session: Session, keys: Sequence[str] | None = None) -> dict[str, int]:
    """The id of each experiment's newest stored snapshot (of every experiment, or of
    ``keys``), by key; experiments never analysed are left out."""
    connection = session.connection()
    newest = select(SnapshotRow.experiment_key, func.max(SnapshotRow.id))
    if keys is None:
        return dict(connection.execute(newest.group_by(SnapshotRow.experiment_key)).all())
    found: dict[str, int] = {}
    for chunk in chunks(keys):
        query = newest.where(SnapshotRow.experiment_key.in_(chunk))
        found.update(connection.execute(query.group_by(SnapshotRow.experiment_key)).all())
    return found


@dataclass(frozen=True)
class FleetExperiment:
    """One experiment as the fleet view lists it."""

    key: str
    name: str
    type: str
    team: str
    owner: str
    status: str
    hypothesis: str
    plan: dict[str, Any]
    start_at: datetime | None
    end_at: datetime | None
    created_at: datetime
    updated_at: datetime
    snapshot_id: int | None
    """The newest stored snapshot's id (None before the first analysis)."""


def fleet_experiments(*, session: Session) -> list[FleetExperiment]:
    """Every experiment with the id of its newest snapshot: two queries, no payloads."""
    latest = newest_snapshot_ids(session=session)
    connection = session.connection()
    columns = select(
        ExperimentRow.key,
        ExperimentRow.name,
        ExperimentRow.type,
        ExperimentRow.team,
        ExperimentRow.owner,
        ExperimentRow.status,
        ExperimentRow.hypothesis,
        ExperimentRow.plan,
        ExperimentRow.start_at,
        ExperimentRow.end_at,
        ExperimentRow.created_at,
        ExperimentRow.updated_at,
    ).order_by(ExperimentRow.created_at.desc(), ExperimentRow.id.desc())
    found = []
    for row in connection.execute(columns):
        found.append(
            FleetExperiment(
                key=row.key,
                name=row.name,
                type=row.type,
                team=row.team,
                owner=row.owner,
                status=row.status,
                hypothesis=row.hypothesis or "",
                plan=row.plan or {},
                start_at=aware(row.start_at),
                end_at=aware(row.end_at),
                created_at=aware(row.created_at) or datetime.now(UTC),
                updated_at=aware(row.updated_at) or datetime.now(UTC),
                snapshot_id=latest.get(row.key),
            )
        )
    return found


def snapshot_payloads(*, session: Session, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The stored payloads of these snapshots, by id (missing ids are left out)."""
    found: dict[int, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(ids))):
        query = select(SnapshotRow.id, SnapshotRow.payload).where(SnapshotRow.id.in_(chunk))
        for snapshot_id, payload in session.connection().execute(query):
            found[snapshot_id] = payload
    return found


@dataclass(frozen=True)
class Transition:
    """One lifecycle move from the audit log (``from_status`` None for the creation)."""

    key: str
    at: datetime
    from_status: str | None
    to_status: str
    id: int = 0
    """The audit entry's id (entries are only ever added, so ids only grow)."""


def transitions(
    *, session: Session, keys: Sequence[str] | None = None, after_id: int = 0
) -> list[Transition]:
    """Experiments' creations and status moves from the audit log, oldest first; only the
    entries with an id above ``after_id`` (to extend a list read before)."""
    query = (
        select(AuditRow.entity_key, AuditRow.at, AuditRow.action, AuditRow.from_status)
        .add_columns(AuditRow.to_status, AuditRow.id)
        .where(
            AuditRow.entity == "experiment",
            AuditRow.action.in_(("create", "clone", "transition")),
            AuditRow.id > after_id,
        )
        .order_by(AuditRow.at, AuditRow.id)
    )
    if keys is not None:
        query = query.where(AuditRow.entity_key.in_(list(keys)))
    found = []
    for key, at, action, from_status, to_status, entry in session.connection().execute(query):
        if action == "transition":
            found.append(Transition(key, aware(at) or at, from_status, to_status or "", entry))
        else:
            found.append(Transition(key, aware(at) or at, None, "draft", entry))
    return found


def transition_stats(*, session: Session) -> tuple[int, int]:
    """How many entries ``transitions`` would return, and the newest one's id (0, 0 for none):
    a cheap check of whether a list read before is still complete."""
    query = select(func.count(AuditRow.id), func.max(AuditRow.id)).where(
        AuditRow.entity == "experiment",
        AuditRow.action.in_(("create", "clone", "transition")),
    )
    count, top = session.connection().execute(query).one()
    return int(count or 0), int(top or 0)


def first_decisions(*, session: Session) -> dict[str, datetime]:
    """When each experiment's first human decision was recorded."""
    query = select(DecisionRow.experiment_key, func.min(DecisionRow.created_at)).group_by(
        DecisionRow.experiment_key
    )
    return {key: aware(at) or at for key, at in session.connection().execute(query)}


def rollout_percents(*, session: Session) -> dict[str, float]:
    """The traffic percentage of each experiment's newest ramp at its current step (0 before
    the first step)."""
    query = select(RampRow.experiment_key, RampRow.steps, RampRow.current_step).order_by(RampRow.id)
    found: dict[str, float] = {}
    for key, steps, current in session.connection().execute(query):
        percent = 0.0
        if isinstance(steps, list) and 0 <= current < len(steps):
            step = steps[current]
            if isinstance(step, dict) and isinstance(step.get("percent"), int | float):
                percent = float(step["percent"])
        found[key] = percent  # the newest ramp wins
    return found

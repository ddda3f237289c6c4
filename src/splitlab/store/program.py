"""Cheap reads for the program views (``decisions.program``): decided experiments with their
prediction and costs, their milestones from the audit log, the latest applied decision and
the notes — a handful of grouped Core queries whatever the number of experiments."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from splitlab.store.decisions import APPLIED
from splitlab.store.fleet import aware, chunks, newest_snapshot_ids
from splitlab.store.tables import AuditRow, DecisionRow, ExperimentRow, NoteRow

DECIDED = ("rolling_out", "shipped", "killed", "rolled_back")
"""The states an experiment reaches once a team has decided on it."""


@dataclass(frozen=True)
class ProgramExperiment:
    """One experiment as the program views read it."""

    key: str
    name: str
    type: str
    team: str
    owner: str
    status: str
    hypothesis: str
    predicted_outcome: str
    predicted_probability: float | None
    costs: dict[str, Any] | None
    created_at: datetime
    snapshot_id: int | None
    """The newest stored snapshot's id."""


def program_experiments(
    *, session: Session, statuses: Sequence[str] = DECIDED
) -> list[ProgramExperiment]:
    """The experiments in ``statuses`` with their newest snapshot's id (two queries)."""
    connection = session.connection()
    columns = select(
        ExperimentRow.key,
        ExperimentRow.name,
        ExperimentRow.type,
        ExperimentRow.team,
        ExperimentRow.owner,
        ExperimentRow.status,
        ExperimentRow.hypothesis,
        ExperimentRow.predicted_outcome,
        ExperimentRow.predicted_probability,
        ExperimentRow.costs,
        ExperimentRow.created_at,
    ).where(ExperimentRow.status.in_(list(statuses)))
    rows = list(connection.execute(columns))
    keys = [row.key for row in rows]
    latest = newest_snapshot_ids(session=session, keys=keys)
    return [
        ProgramExperiment(
            key=row.key,
            name=row.name,
            type=row.type,
            team=row.team,
            owner=row.owner,
            status=row.status,
            hypothesis=row.hypothesis or "",
            predicted_outcome=row.predicted_outcome or "",
            predicted_probability=row.predicted_probability,
            costs=row.costs,
            created_at=aware(row.created_at) or datetime.now(UTC),
            snapshot_id=latest.get(row.key),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class Milestones:
    """First start, first stop and first decided state of one experiment (audit log)."""

    started: datetime | None
    stopped: datetime | None
    decided: datetime | None


def milestones(*, session: Session, keys: Sequence[str]) -> dict[str, Milestones]:
    """Each experiment's milestones from its status moves: one grouped query per chunk."""

    def first(statuses: tuple[str, ...]) -> Any:
        return func.min(case((AuditRow.to_status.in_(statuses), AuditRow.at)))

    found: dict[str, Milestones] = {}
    for chunk in chunks(list(keys)):
        query = (
            select(
                AuditRow.entity_key,
                first(("running",)),
                first(("stopped", "rolled_back")),
                first(DECIDED),
            )
            .where(
                AuditRow.entity == "experiment",
                AuditRow.action == "transition",
                AuditRow.entity_key.in_(chunk),
            )
            .group_by(AuditRow.entity_key)
        )
        for key, started, stopped, decided in session.connection().execute(query):
            found[key] = Milestones(aware(started), aware(stopped), aware(decided))
    return found


@dataclass(frozen=True)
class AppliedDecision:
    """The newest applied human decision of an experiment."""

    action: str
    variant: str | None
    rationale: str
    override: bool
    recommendation_code: str | None


def applied_decisions(*, session: Session, keys: Sequence[str]) -> dict[str, AppliedDecision]:
    """The newest applied decision per experiment of ``keys``."""
    found: dict[str, AppliedDecision] = {}
    for chunk in chunks(list(keys)):
        query = (
            select(
                DecisionRow.experiment_key,
                DecisionRow.action,
                DecisionRow.variant,
                DecisionRow.rationale,
                DecisionRow.override,
                DecisionRow.recommendation_code,
            )
            .where(DecisionRow.experiment_key.in_(chunk), DecisionRow.status == APPLIED)
            .order_by(DecisionRow.id)
        )
        for key, action, variant, rationale, override, code in session.connection().execute(query):
            found[key] = AppliedDecision(action, variant, rationale or "", bool(override), code)
    return found


@dataclass(frozen=True)
class Note:
    """A note on an experiment: its learnings, in the team's words."""

    author: str
    body: str
    created_at: datetime


def notes(*, session: Session, keys: Sequence[str]) -> dict[str, list[Note]]:
    """The notes of each experiment of ``keys``, oldest first."""
    found: dict[str, list[Note]] = defaultdict(list)
    for chunk in chunks(list(keys)):
        query = (
            select(ExperimentRow.key, NoteRow.author, NoteRow.body, NoteRow.created_at)
            .join(ExperimentRow, ExperimentRow.id == NoteRow.experiment_id)
            .where(ExperimentRow.key.in_(chunk))
            .order_by(NoteRow.created_at, NoteRow.id)
        )
        for key, author, body, at in session.connection().execute(query):
            found[key].append(Note(author, body, aware(at) or at))
    return dict(found)


def teams_and_types(*, session: Session) -> tuple[list[str], list[str]]:
    """The teams and experiment types in use (for the views' filter lists)."""
    connection = session.connection()
    teams = connection.execute(select(ExperimentRow.team).distinct()).scalars().all()
    types = connection.execute(select(ExperimentRow.type).distinct()).scalars().all()
    return sorted(t for t in teams if t), sorted(types)

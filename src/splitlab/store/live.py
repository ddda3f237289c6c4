"""Reads of the experiments the hot paths serve: the live ones' specs, whether their
allocation changed since they started, a cheap probe of change, and what ingestion needs to
know of each experiment."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from splitlab.domain import ExperimentSpec, Status
from splitlab.domain.lifecycle import EDITABLE_WHEN_LIVE, LIVE
from splitlab.domain.summary import ExperimentSummary
from splitlab.store.experiments import list_experiments, spec_from_row
from splitlab.store.tables import AuditRow, CacheVersionRow, ExperimentRow, MetricRow
from splitlab.store.versions import EXPERIMENTS

ALLOCATION_FIELDS = EDITABLE_WHEN_LIVE
"""Audited changes that move units between variants (the only edits allowed while live)."""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def allocation_changed(*, session: Session, starts: Mapping[str, datetime | None]) -> set[str]:
    """Keys (of ``starts``: experiment key -> start time) whose weights or coverage were
    changed after the start. Only those need sticky lookups."""
    started = {key: at for key, at in starts.items() if at is not None}
    if not started:
        return set()
    rows = session.execute(
        select(AuditRow.entity_key, AuditRow.at, AuditRow.changes).where(
            AuditRow.entity == "experiment",
            AuditRow.action == "update",
            AuditRow.entity_key.in_(started),
        )
    )
    changed = set()
    for key, at, changes in rows:
        if (
            _aware(at) >= _aware(started[key])
            and changes
            and any(name in changes for name in ALLOCATION_FIELDS)
        ):
            changed.add(key)
    return changed


def experiment_statuses(*, session: Session) -> dict[str, str]:
    """The status of every experiment, by key."""
    return {
        key: status
        for key, status in session.execute(select(ExperimentRow.key, ExperimentRow.status))
    }


def live_specs(*, session: Session) -> list[ExperimentSpec]:
    """The specs of the running (or rolling-out) experiments, by key."""
    rows = session.scalars(
        select(ExperimentRow)
        .where(ExperimentRow.status.in_([s.value for s in LIVE]))
        .order_by(ExperimentRow.key)
    ).all()
    return [spec_from_row(row) for row in rows]


def experiments_probe(*, session: Session) -> tuple[Any, ...]:
    """What changes whenever an experiment does: the experiments' cache version (bumped by
    every change made through Splitlab), and count and newest ``updated_at`` (for the rest)."""
    version = (
        select(CacheVersionRow.version).where(CacheVersionRow.name == EXPERIMENTS).scalar_subquery()
    )
    query = select(func.count(ExperimentRow.id), func.max(ExperimentRow.updated_at), version)
    return tuple(session.execute(query).one())


def experiment_summary(*, session: Session, row: ExperimentRow) -> ExperimentSummary:
    """What ingestion needs of an experiment: status, variants, start and pre-period."""
    spec = spec_from_row(row)
    cuped = session.scalars(
        select(MetricRow.cuped_days).where(MetricRow.key.in_(spec.metrics.all_keys()))
    ).all()
    return ExperimentSummary(
        key=row.key,
        status=Status(row.status),
        variants=frozenset(v.key for v in spec.variants),
        start_at=spec.start_at,
        pre_period=timedelta(days=max(cuped, default=0)),
    )


def experiment_summaries(*, session: Session) -> dict[str, ExperimentSummary]:
    """Every experiment's summary (bulk imports validate against all of them)."""
    return {
        row.key: experiment_summary(session=session, row=row)
        for row in list_experiments(session=session)
    }

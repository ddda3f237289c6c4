"""Builders for the scheduler, ramp and webhook tests: experiments moved through the
lifecycle with the store functions (no HTTP), and audit entries read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from splitlab.domain import (
    ExperimentSpec,
    MetricDefinition,
    Principal,
    ReviewDecision,
    Role,
    Status,
)
from splitlab.services import Services
from splitlab.store.experiments import create_experiment, review, transition
from splitlab.store.metrics import missing_metrics, upsert_metric
from splitlab.store.tables import AuditRow

OWNER = Principal(username="olga", role=Role.EDITOR)
REVIEWER = Principal(username="rita", role=Role.REVIEWER)


def spec(key: str, *, treatments: int = 1, **overrides: Any) -> ExperimentSpec:
    variants = [{"key": "control", "weight": 1 / (treatments + 1), "is_control": True}]
    variants += [
        {"key": f"treatment-{chr(97 + i)}", "weight": 1 / (treatments + 1)}
        for i in range(treatments)
    ]
    body = {
        "key": key,
        "name": key,
        "hypothesis": "the treatment raises conversion",
        "type": "feature",
        "variants": variants,
        "metrics": {"primary": "conversion"},
    }
    return ExperimentSpec.model_validate(body | overrides)


def make_experiment(
    services: Services,
    key: str,
    *,
    to: Status = Status.RUNNING,
    treatments: int = 1,
    **overrides: Any,
) -> None:
    """A metric and an approved experiment moved to ``to`` (scheduled, running, stopped,
    readout or rolling_out)."""
    with services.sessions.begin() as session:
        if missing_metrics(session=session, keys=["conversion"]):
            upsert_metric(
                session=session,
                definition=MetricDefinition(key="conversion", kind="binary", event="purchase"),
                actor=OWNER,
            )
        create_experiment(
            session=session, spec=spec(key, treatments=treatments, **overrides), actor=OWNER
        )
        transition(session=session, key=key, to=Status.REVIEW, actor=OWNER)
        review(session=session, key=key, reviewer=REVIEWER, decision=ReviewDecision.APPROVE)
        path = {
            Status.REVIEW: [],
            Status.SCHEDULED: [Status.SCHEDULED],
            Status.RUNNING: [Status.RUNNING],
            Status.STOPPED: [Status.RUNNING, Status.STOPPED],
            Status.READOUT: [Status.RUNNING, Status.STOPPED, Status.READOUT],
            Status.ROLLING_OUT: [
                Status.RUNNING,
                Status.STOPPED,
                Status.READOUT,
                Status.ROLLING_OUT,
            ],
        }[to]
        for step in path:
            transition(session=session, key=key, to=step, actor=OWNER)


def audit(services: Services, key: str, *actions: str) -> list[AuditRow]:
    """Audit entries of experiment ``key`` (of ``actions`` when given), oldest first."""
    with services.sessions() as session:
        query = select(AuditRow).where(AuditRow.entity_key == key).order_by(AuditRow.id)
        if actions:
            query = query.where(AuditRow.action.in_(actions))
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def status_of(services: Services, key: str) -> str:
    from splitlab.store.experiments import get_experiment

    with services.sessions() as session:
        return get_experiment(session=session, key=key).status


def weights_of(services: Services, key: str) -> dict[str, float]:
    from splitlab.store.experiments import get_experiment, spec_from_row

    with services.sessions() as session:
        return {
            v.key: v.weight
            for v in spec_from_row(get_experiment(session=session, key=key)).variants
        }

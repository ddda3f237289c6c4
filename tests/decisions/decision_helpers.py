"""Builders for the human-decision tests: experiments moved through the lifecycle with the
store functions, stored recommendations and policies, and what the store holds afterwards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from splitlab.decisions.recommendation import Code, Recommendation
from splitlab.domain import (
    ExperimentSpec,
    MetricDefinition,
    Principal,
    ReviewDecision,
    Role,
    Status,
)
from splitlab.services import Services
from splitlab.store.experiments import create_experiment, get_experiment, review, transition
from splitlab.store.metrics import missing_metrics, upsert_metric
from splitlab.store.policies import put_policy
from splitlab.store.tables import AuditRow, DecisionRow, RampRow, RecommendationRow

OWNER = Principal(username="olga", role=Role.EDITOR)
EDITOR = Principal(username="ed", role=Role.EDITOR)
REVIEWER = Principal(username="rita", role=Role.REVIEWER)
SECOND_REVIEWER = Principal(username="rob", role=Role.REVIEWER)
ADMIN = Principal(username="ada", role=Role.ADMIN)
VIEWER = Principal(username="vic", role=Role.VIEWER)

PATHS = {
    Status.DRAFT: [],
    Status.RUNNING: [Status.REVIEW, Status.RUNNING],
    Status.STOPPED: [Status.REVIEW, Status.RUNNING, Status.STOPPED],
    Status.READOUT: [Status.REVIEW, Status.RUNNING, Status.STOPPED, Status.READOUT],
}


def make_experiment(
    services: Services, key: str, *, to: Status = Status.RUNNING, **overrides: Any
) -> None:
    """A metric and an experiment (control + ``one-page`` + ``two-page``) moved to ``to``."""
    body = {
        "key": key,
        "hypothesis": "a shorter checkout raises conversion",
        "variants": [
            {"key": "control", "weight": 0.34, "is_control": True},
            {"key": "one-page", "weight": 0.33},
            {"key": "two-page", "weight": 0.33},
        ],
        "metrics": {"primary": "conversion"},
    }
    with services.sessions.begin() as session:
        if missing_metrics(session=session, keys=["conversion"]):
            upsert_metric(
                session=session,
                definition=MetricDefinition(key="conversion", kind="binary", event="purchase"),
                actor=OWNER,
            )
        create_experiment(
            session=session, spec=ExperimentSpec.model_validate(body | overrides), actor=OWNER
        )
        for step in PATHS[to]:
            transition(session=session, key=key, to=step, actor=OWNER)
            if step is Status.REVIEW:
                review(session=session, key=key, reviewer=REVIEWER, decision=ReviewDecision.APPROVE)


def recommend(
    services: Services,
    key: str,
    code: Code,
    *,
    variant: str | None = None,
    segments: list[dict[str, str]] | None = None,
) -> int:
    """Store a recommendation as the engine would (its JSON form); returns its id."""
    advice = Recommendation(
        experiment=key,
        code=code,
        label=code.value,
        summary=f"{code.value} for the test",
        variant=variant,
        segments=segments or [],
        policy="default",
        policy_hash="0" * 32,
    )
    with services.sessions.begin() as session:
        row = RecommendationRow(
            experiment_key=key,
            policy_hash=advice.policy_hash,
            code=code.value,
            payload=advice.to_json(),
        )
        session.add(row)
        session.flush()
        return row.id


def no_approval_needed(services: Services, key: str) -> None:
    """Store the experiment's policy overlay: overrides apply without approval."""
    with services.sessions.begin() as session:
        put_policy(
            session=session,
            name=f"experiment-{key}",
            document={"override_requires_approval": False},
            actor=ADMIN,
        )


def status(services: Services, key: str) -> str:
    with services.sessions() as session:
        return get_experiment(session=session, key=key).status


def state(services: Services, key: str) -> dict[str, Any]:
    """What a refused decision must leave untouched: status, schedule, weights, counts."""
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        return {
            "status": row.status,
            "end_at": row.end_at,
            "plan": dict(row.plan),
            "weights": [v.weight for v in row.variants],
            "decisions": session.scalar(select(func.count()).select_from(DecisionRow)),
            "ramps": session.scalar(select(func.count()).select_from(RampRow)),
            "audit": session.scalar(select(func.count()).select_from(AuditRow)),
        }


def audit(services: Services, key: str) -> list[AuditRow]:
    """The experiment's audit entries, oldest first."""
    with services.sessions() as session:
        return list(
            session.scalars(
                select(AuditRow)
                .where(AuditRow.entity == "experiment", AuditRow.entity_key == key)
                .order_by(AuditRow.id)
            )
        )

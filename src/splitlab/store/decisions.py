"""Human decisions in the app store: recorded, reviewed, applied — each step audited.

The rules (which action agrees with which recommendation, who may approve an override, what
an action does to the lifecycle) live in ``splitlab.decisions.actions``; this module only
reads and writes rows. Every mutation writes one audit entry on the experiment's timeline
(entity ``experiment``), so the dashboard, the webhooks and ``splitlab experiments audit``
see decisions beside the lifecycle moves they cause.

Deciding is serialised per experiment by :func:`lock_experiment`, the first statement of a
deciding transaction: a second decider on the same experiment waits until the first one
commits and then reads what it did, so two simultaneous decisions never both apply.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from splitlab.domain.limits import MAX_DATE, MAX_INT32
from splitlab.errors import ConflictError, NotFoundError
from splitlab.store.audit import write_audit
from splitlab.store.experiments import get_experiment
from splitlab.store.tables import DecisionRow, ExperimentRow, RecommendationRow

PENDING = "pending_approval"
APPLIED = "applied"
REJECTED = "rejected"
"""A decision's states: an override the policy wants approved waits as ``pending_approval``
until a reviewer approves it (then ``applied``) or rejects it (``rejected``); any other
decision is ``applied`` as it is recorded."""

MAX_PLAN_DAYS = 3650
"""The largest ``plan.max_days`` an experiment may have (``domain.experiments.Plan``)."""

_EXPERIMENTS = cast(Table, ExperimentRow.__table__)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def lock_experiment(*, session: Session, key: str) -> ExperimentRow:
    """Take the experiment's write lock for the rest of the transaction and return its row
    as committed now (``NotFoundError`` for an unknown key).

    Call it first in the transaction: a no-op update of the row makes PostgreSQL hold the
    row lock and SQLite the database's write lock until the commit, so a concurrent decider
    waits here and then reads the state the first one left. (A Core statement: the change
    feed does not count it as a change of the experiment.)"""
    locked = session.connection().execute(
        update(_EXPERIMENTS)
        .where(_EXPERIMENTS.c.key == key)
        .values(updated_at=_EXPERIMENTS.c.updated_at)
    )
    if locked.rowcount == 0:
        raise NotFoundError(f"no experiment {key!r}", details={"key": key})
    row = get_experiment(session=session, key=key)
    session.refresh(row)  # a row this session loaded before the lock may be stale
    return row


# ---------------------------------------------------------------- recommendations


def find_recommendation(
    *, session: Session, key: str, recommendation_id: int
) -> RecommendationRow | None:
    """Recommendation ``recommendation_id`` if it was made for experiment ``key``."""
    return session.scalar(
        select(RecommendationRow).where(
            RecommendationRow.id == recommendation_id, RecommendationRow.experiment_key == key
        )
    )


# ---------------------------------------------------------------- decisions


def create_decision(
    *,
    session: Session,
    key: str,
    action: str,
    rationale: str,
    actor: str,
    status: str,
    override: bool,
    variant: str | None = None,
    segments: list[dict[str, str]] | None = None,
    recommendation: RecommendationRow | None = None,
    details: dict[str, Any] | None = None,
) -> DecisionRow:
    """Store a decision and write its audit entry (action ``decision``, the rationale as the
    reason)."""
    decision = DecisionRow(
        experiment_key=key,
        action=action,
        variant=variant,
        segments=segments,
        rationale=rationale,
        recommendation_id=recommendation.id if recommendation else None,
        recommendation_code=recommendation.code if recommendation else None,
        override=override,
        status=status,
        actor=actor,
        details=details or None,
        created_at=_now(),
    )
    session.add(decision)
    session.flush()
    _audit(session, decision, action="decision", actor=actor, reason=rationale)
    return decision


def get_decision(*, session: Session, key: str, decision_id: int) -> DecisionRow:
    """Decision ``decision_id`` of experiment ``key``; ``NotFoundError`` when there is no such
    decision on that experiment (an id of another experiment's decision included)."""
    get_experiment(session=session, key=key)
    in_range = 1 <= decision_id <= MAX_INT32  # ids are 32-bit: a larger one names nothing
    decision = (
        session.scalar(
            select(DecisionRow).where(
                DecisionRow.id == decision_id, DecisionRow.experiment_key == key
            )
        )
        if in_range
        else None
    )
    if decision is None:
        raise NotFoundError(
            f"experiment {key!r} has no decision {decision_id}",
            details={"key": key, "id": decision_id},
        )
    return decision


def list_decisions(*, session: Session, key: str) -> list[DecisionRow]:
    """The decisions on experiment ``key``, newest first (``NotFoundError`` for an unknown
    experiment)."""
    get_experiment(session=session, key=key)
    return list(
        session.scalars(
            select(DecisionRow)
            .where(DecisionRow.experiment_key == key)
            .order_by(DecisionRow.id.desc())
        )
    )


def pending_decision(*, session: Session, key: str) -> DecisionRow | None:
    """The decision on experiment ``key`` that awaits approval, if any."""
    return session.scalar(
        select(DecisionRow)
        .where(DecisionRow.experiment_key == key, DecisionRow.status == PENDING)
        .order_by(DecisionRow.id)
        .limit(1)
    )


def close_review(
    *,
    session: Session,
    decision: DecisionRow,
    approved: bool,
    reviewer: str,
    comment: str,
    via: str | None = None,
) -> DecisionRow:
    """Approve or reject a pending decision (audited as ``decision_approved`` or
    ``decision_rejected``). The state changes by a conditional update, so a decision is
    reviewed once: a second review gets ``ConflictError``. An approved decision is marked
    applied here; the caller applies it in the same transaction."""
    moment = _now()
    closed = session.execute(
        update(DecisionRow)
        .where(DecisionRow.id == decision.id, DecisionRow.status == PENDING)
        .values(
            status=APPLIED if approved else REJECTED,
            approved_by=reviewer,
            approved_at=moment,
            details={**(decision.details or {}), "review_comment": comment},
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(closed, "rowcount", 0) != 1:
        session.refresh(decision)
        raise ConflictError(
            f"decision {decision.id} is {decision.status}, not awaiting approval",
            details={"id": decision.id, "status": decision.status},
        )
    session.refresh(decision)
    _audit(
        session,
        decision,
        action="decision_approved" if approved else "decision_rejected",
        actor=reviewer,
        reason=comment,
        via=via,
    )
    return decision


def set_ramp(*, session: Session, decision: DecisionRow, ramp_id: int) -> None:
    """Link the ramp that applying ``decision`` created."""
    decision.ramp_id = ramp_id
    session.flush()


def extend_schedule(
    *, session: Session, key: str, days: int, actor: str, reason: str
) -> dict[str, Any]:
    """Give a running experiment ``days`` more days: its ``end_at`` and its plan's
    ``max_days``, whichever it has, move by ``days`` (audited as ``schedule_extended`` with
    the before and after). Returns the changes.

    A change of schedule, not of the approved design: the edit guard of a live experiment
    (``domain.lifecycle.EDITABLE_WHEN_LIVE``) lets only coverage and weights change, so this
    narrow function is the one way to move these two fields while it runs. ``ConflictError``
    when the experiment has neither (it runs until someone stops it: nothing to extend), or
    when the new schedule would pass the limits (``MAX_DATE``, ``MAX_PLAN_DAYS``)."""
    row = get_experiment(session=session, key=key)
    changes: dict[str, Any] = {}
    end_at = _aware(row.end_at)
    if end_at is not None:
        later = end_at + timedelta(days=days)
        if later >= MAX_DATE:
            raise ConflictError(
                f"end_at would move past {MAX_DATE:%Y-%m-%d}", details={"end_at": later.isoformat()}
            )
        changes["end_at"] = {"before": end_at.isoformat(), "after": later.isoformat()}
        row.end_at = later
    max_days = (row.plan or {}).get("max_days")
    if max_days is not None:
        longer = int(max_days) + days
        if longer > MAX_PLAN_DAYS:
            raise ConflictError(
                f"max_days would become {longer}; the limit is {MAX_PLAN_DAYS}",
                details={"max_days": longer},
            )
        changes["plan.max_days"] = {"before": max_days, "after": longer}
        row.plan = {**row.plan, "max_days": longer}
    if not changes:
        raise ConflictError(
            f"experiment {key!r} has no end_at and no max_days: it runs until it is stopped, "
            "so there is nothing to extend",
            details={"key": key},
        )
    row.updated_at = _now()
    session.flush()
    write_audit(
        session=session,
        entity="experiment",
        entity_key=key,
        action="schedule_extended",
        actor=actor,
        reason=reason,
        changes={"days": days, **changes},
    )
    return changes


def _audit(
    session: Session,
    decision: DecisionRow,
    *,
    action: str,
    actor: str,
    reason: str,
    via: str | None = None,
) -> None:
    write_audit(
        session=session,
        entity="experiment",
        entity_key=decision.experiment_key,
        action=action,
        actor=actor,
        reason=reason,
        changes={
            "decision_id": decision.id,
            "decision": decision.action,
            "variant": decision.variant,
            "segments": decision.segments,
            "override": decision.override,
            "status": decision.status,
            "recommendation_id": decision.recommendation_id,
            "recommendation_code": decision.recommendation_code,
        },
        via=via,
    )


def decision_to_dict(decision: DecisionRow) -> dict[str, Any]:
    """The JSON form of a decision."""
    details = decision.details or {}
    approved_at = _aware(decision.approved_at)
    return {
        "id": decision.id,
        "experiment": decision.experiment_key,
        "action": decision.action,
        "variant": decision.variant,
        "segments": decision.segments,
        "rationale": decision.rationale,
        "recommendation_id": decision.recommendation_id,
        "recommendation_code": decision.recommendation_code,
        "override": decision.override,
        "status": decision.status,
        "actor": decision.actor,
        "reviewed_by": decision.approved_by,
        "reviewed_at": approved_at.isoformat() if approved_at else None,
        "review_comment": details.get("review_comment"),
        "ramp": details.get("ramp"),
        "days": details.get("days"),
        "ramp_id": decision.ramp_id,
        "created_at": _aware(decision.created_at).isoformat(),  # type: ignore[union-attr]
    }

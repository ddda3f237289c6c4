"""Human decisions on an experiment: record (ship, kill, roll back, extend), list, and approve
or reject an override that waits for a reviewer (``decisions.actions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from splitlab.api.deps import Editor, Reader, ServicesDep
from splitlab.decisions.actions import (
    approve_decision,
    list_decisions,
    record_decision,
    reject_decision,
)
from splitlab.decisions.requests import (
    Action,
    DecisionRequest,
    DecisionStatus,
    RampPlan,
    ReviewRequest,
    Segment,
)
from splitlab.domain import Status
from splitlab.domain.limits import MAX_INT32

router = APIRouter(prefix="/api/experiments", tags=["decisions"])

DecisionId = Annotated[int, Path(ge=1, le=MAX_INT32, description="the decision's id")]


class DecisionOut(BaseModel):
    """A recorded decision."""

    model_config = ConfigDict(extra="forbid")

    id: int
    experiment: str
    action: Action
    variant: str | None
    segments: list[Segment] | None
    rationale: str
    recommendation_id: int | None
    """The recommendation it was decided on (the latest stored when it was recorded)."""
    recommendation_code: str | None
    override: bool
    """True when it disagrees with that recommendation (or there was none)."""
    status: DecisionStatus
    actor: str
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_comment: str | None
    ramp: RampPlan | None
    days: int | None
    ramp_id: int | None
    """The ramp a ship with a rollout plan started."""
    created_at: datetime


class DecisionResult(DecisionOut):
    """A decision just recorded, approved or rejected, and the experiment's status after it."""

    experiment_status: Status


class DecisionList(BaseModel):
    decisions: list[DecisionOut]
    count: int


@router.post("/{key}/decisions", status_code=201, response_model=DecisionResult)
def record(key: str, body: DecisionRequest, services: ServicesDep, actor: Editor) -> dict[str, Any]:
    """Record a decision; applied at once unless it is an override that the policy makes
    wait for a reviewer's approval (``status: pending_approval``)."""
    return record_decision(
        services=services,
        key=key,
        action=body.action,
        rationale=body.rationale,
        actor=actor,
        variant=body.variant,
        segments=[s.model_dump() for s in body.segments] if body.segments is not None else None,
        ramp=body.ramp,
        days=body.days,
        follows=body.follows,
    )


@router.get("/{key}/decisions", response_model=DecisionList)
def list_(key: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    """The experiment's decisions, newest first."""
    items = list_decisions(services=services, key=key)
    return {"decisions": items, "count": len(items)}


@router.post("/{key}/decisions/{decision_id}/approve", response_model=DecisionResult)
def approve(
    key: str,
    decision_id: DecisionId,
    services: ServicesDep,
    actor: Editor,
    body: ReviewRequest | None = None,
) -> dict[str, Any]:
    """Approve a pending override and apply it (a reviewer or admin other than its author)."""
    comment = body.comment if body else ""
    return approve_decision(
        services=services, key=key, decision_id=decision_id, reviewer=actor, comment=comment
    )


@router.post("/{key}/decisions/{decision_id}/reject", response_model=DecisionResult)
def reject(
    key: str,
    decision_id: DecisionId,
    services: ServicesDep,
    actor: Editor,
    body: ReviewRequest | None = None,
) -> dict[str, Any]:
    """Reject a pending decision; the experiment stays as it is."""
    comment = body.comment if body else ""
    return reject_decision(
        services=services, key=key, decision_id=decision_id, reviewer=actor, comment=comment
    )

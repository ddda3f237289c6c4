"""Promote-winner ramps: ``GET /api/experiments/{key}/ramp`` and an immediate rollback
(``decisions.rollout``). A ramp starts with a ship decision that carries a rollout plan
(``POST /api/experiments/{key}/decisions``); the scheduler advances it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from splitlab.api.deps import Editor, Reader, ServicesDep
from splitlab.decisions.rollout import rollback_rollout, show_ramp
from splitlab.domain import Status
from splitlab.domain.limits import LongText
from splitlab.store.ramps import RampStep

router = APIRouter(prefix="/api/experiments", tags=["ramps"])


class RampOut(BaseModel):
    """A ramp: its plan, where it is, and when the scheduler takes the next step."""

    model_config = ConfigDict(extra="forbid")

    id: int
    experiment: str
    variant: str
    """The treatment being promoted."""
    status: Literal["active", "completed", "rolled_back", "cancelled"]
    steps: list[RampStep]
    current_step: int
    """0-based index of the step applied last."""
    current_percent: float | None
    """The variant's share of traffic now, in %."""
    next_at: datetime | None
    """When the next step is due (after a guardrail check); null once the ramp ended."""
    last_error: str
    """Why the last attempt to step failed, or the rollback's reason."""
    created_by: str
    created_at: datetime
    updated_at: datetime
    experiment_status: Status


class RollbackRequest(BaseModel):
    """An immediate rollback of the active ramp."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: LongText = Field(min_length=1, description="why (required; the audit log keeps it)")

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: say why")
        return value


@router.get("/{key}/ramp", response_model=RampOut)
def get_ramp(key: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    """The experiment's latest ramp (active or ended); 404 when it never had one."""
    return show_ramp(services=services, key=key)


@router.post("/{key}/ramp/rollback", response_model=RampOut)
def rollback(
    key: str, body: RollbackRequest, services: ServicesDep, actor: Editor
) -> dict[str, Any]:
    """Roll the active ramp back now: the experiment goes rolling_out → rolled_back and the
    reason is audited; 409 when no ramp is active."""
    return rollback_rollout(services=services, key=key, reason=body.reason, actor=actor)

"""Request and response models of the JSON API (input, output; tables live in store/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from splitlab.domain import ExperimentSpec, MetricDefinition, ReviewDecision, Status


class ExperimentOut(ExperimentSpec):
    model_config = ConfigDict(extra="ignore")

    status: Status
    cloned_from: str | None = None
    created_by: str = ""
    created_at: datetime
    updated_at: datetime
    metric_versions: dict[str, int | None] = Field(
        default_factory=dict,
        description="metric key → definition version used (pinned when the experiment started)",
    )
    config_fingerprint: str | None = Field(
        default=None, description="hash of the configuration an approval is bound to"
    )


class MetricOut(MetricDefinition):
    """A metric definition as stored: the definition and its version."""

    model_config = ConfigDict(extra="ignore")

    version: int = Field(description="1 for a new metric; each change is the next version")


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]
    count: int


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(description="target status")
    reason: str = ""
    reviewers: list[str] = Field(default_factory=list, description="when moving to review")


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=20_000)


class CloneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    comment: str = ""


class EditIn(BaseModel):
    """PATCH body: the fields to change, plus an optional reason for the audit log."""

    model_config = ConfigDict(extra="allow")

    reason: str = ""


class AuditEntry(BaseModel):
    id: int
    entity: str
    key: str
    action: str
    actor: str
    at: datetime
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    reason: str = ""
    changes: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None

    model_config = ConfigDict(populate_by_name=True)

"""Request and response models of the JSON API (input, output; tables live in store/)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from splitlab.domain import ExperimentSpec, MetricDefinition, ReviewDecision, Status
from splitlab.domain.experiments import Slug
from splitlab.domain.limits import (
    MAX_REVIEWERS,
    MAX_VARIANTS,
    LongText,
    NoteText,
    ReadBack,
    Reason,
    ShortText,
    max_items,
)


class ExperimentOut(ReadBack, ExperimentSpec):
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


class MetricOut(ReadBack, MetricDefinition):
    """A metric definition as stored: the definition and its version."""

    model_config = ConfigDict(extra="ignore")

    version: int = Field(description="1 for a new metric; each change is the next version")


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]
    count: int


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: ShortText = Field(description="target status")
    reason: Reason = ""
    reviewers: Annotated[list[ShortText], max_items(MAX_REVIEWERS)] = Field(
        default_factory=list,
        description="when moving to review",
        json_schema_extra={"maxItems": MAX_REVIEWERS},
    )


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: NoteText = Field(min_length=1)


class CloneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Slug


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision
    comment: LongText = ""


class EditIn(BaseModel):
    """PATCH body: the fields to change, plus an optional reason for the audit log."""

    model_config = ConfigDict(extra="allow")

    reason: Reason = ""


FiniteList = Annotated[list[float], max_items(MAX_VARIANTS)]


class RebalanceIn(BaseModel):
    """Bandit rebalance body: posteriors in variant order (both, or neither to compute them
    from the warehouse), a seed for the Thompson draws and a reason for the audit log."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    posterior_means: FiniteList | None = Field(
        default=None, alias="posteriorMeans", json_schema_extra={"maxItems": MAX_VARIANTS}
    )
    posterior_variances: (
        Annotated[list[Annotated[float, Field(ge=0)]], max_items(MAX_VARIANTS)] | None
    ) = Field(
        default=None,
        alias="posteriorVariances",
        description="variances of the posteriors: zero or more",
        json_schema_extra={"maxItems": MAX_VARIANTS},
    )
    seed: int | None = Field(default=0, ge=0, lt=2**63)
    reason: Reason = ""

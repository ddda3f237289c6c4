"""What a person sends to decide: the action, its rationale and what goes with it (the
variant, segments or rollout plan of a ship; the days of an extension), validated before the
store is touched. ``decisions.actions`` applies it; the API takes ``DecisionRequest`` as its
body."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from splitlab.domain.experiments import Slug
from splitlab.domain.limits import (
    MAX_INT32,
    MAX_SEGMENTS,
    LongText,
    PropertyName,
    ShortText,
    max_items,
)
from splitlab.errors import ValidationError, from_pydantic
from splitlab.store import decisions as repo
from splitlab.store.ramps import RampStep, parse_steps


class Action(StrEnum):
    """What a team decides to do with an experiment."""

    SHIP = "ship"
    """Ship a treatment to everyone (or to some segments), at once or by a ramp."""
    KILL = "kill"
    """Stop for good without shipping."""
    ROLLBACK = "rollback"
    """Take a live experiment or rollout off the air now (running or rolling_out)."""
    EXTEND = "extend"
    """Keep a running experiment running for more days."""


class DecisionStatus(StrEnum):
    """Where a decision stands (``store.decisions``): waiting for a reviewer, applied, or
    rejected."""

    PENDING_APPROVAL = repo.PENDING
    APPLIED = repo.APPLIED
    REJECTED = repo.REJECTED


MAX_EXTEND_DAYS = 365
"""Days one extension may add."""


class Segment(BaseModel):
    """A pre-registered segment value, e.g. ``{"name": "country", "value": "DE"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PropertyName
    value: ShortText


class RampPlan(BaseModel):
    """A rollout plan: the winner's share of traffic step by step (e.g. 5, 25, 50, 100 %),
    each step held some hours before the scheduler takes the next."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[RampStep] = Field(min_length=1, max_length=20)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty: say why")
    return value


class DecisionRequest(BaseModel):
    """A decision as a person sends it (API body, CLI options, library call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    rationale: LongText = Field(min_length=1, description="why (required; the audit log keeps it)")
    variant: Slug | None = Field(
        default=None,
        description="ship: the treatment to ship (default: the recommended one, or the only one)",
    )
    segments: Annotated[list[Segment], max_items(MAX_SEGMENTS)] | None = Field(
        default=None,
        description="ship: only to these pre-registered segment values",
        json_schema_extra={"maxItems": MAX_SEGMENTS},
    )
    ramp: RampPlan | None = Field(default=None, description="ship: a rollout plan")
    # strict: JSON true is not 1 day, nor "3" three (a client sending them has a bug to see)
    days: int | None = Field(
        default=None, ge=1, le=MAX_EXTEND_DAYS, strict=True, description="extend: days to add"
    )
    follows: int | None = Field(
        default=None,
        ge=1,
        strict=True,
        le=MAX_INT32,
        description="the id of the recommendation the decision was made on (refused when a "
        "newer one exists)",
    )

    _rationale_not_blank = field_validator("rationale")(_not_blank)


class ReviewRequest(BaseModel):
    """An approval or rejection of a pending decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comment: LongText = ""


def problem(loc: list[str | int], msg: str) -> ValidationError:
    return ValidationError(f"{'.'.join(map(str, loc))}: {msg}", details=[{"loc": loc, "msg": msg}])


def check_fields(request: DecisionRequest) -> None:
    """Which fields go with which action; the rollout plan's shape (``parse_steps``)."""
    allowed = {
        Action.SHIP: {"variant", "segments", "ramp"},
        Action.EXTEND: {"days"},
    }.get(request.action, set())
    for name in ("variant", "segments", "ramp", "days"):
        if getattr(request, name) is not None and name not in allowed:
            raise problem([name], f"does not go with action {request.action.value}")
    if request.action is Action.EXTEND and request.days is None:
        raise problem(["days"], "extend needs the number of days to add")
    if request.segments is not None and request.ramp is not None:
        raise problem(["ramp"], "a ramp rolls a treatment out to everyone, not to segments")
    if request.segments is not None and not request.segments:
        raise problem(["segments"], "name at least one segment (or leave it out)")
    if request.ramp is not None:
        try:
            parse_steps([step.model_dump() for step in request.ramp.steps])
        except ValidationError as exc:
            raise ValidationError(
                f"ramp: {exc.message}",
                details=[
                    {**detail, "loc": ["ramp", *detail["loc"]]} for detail in exc.details or []
                ],
            ) from exc


def as_request(**fields: Any) -> DecisionRequest:
    """Validate a decision given as keyword arguments (None: absent); ``ValidationError``
    naming each bad field. ``ramp`` may be the list of steps alone."""
    ramp = fields.get("ramp")
    if isinstance(ramp, list | tuple):  # the steps alone
        fields["ramp"] = {"steps": list(ramp)}
    try:
        request = DecisionRequest.model_validate(
            {name: value for name, value in fields.items() if value is not None}
        )
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from exc
    check_fields(request)
    return request

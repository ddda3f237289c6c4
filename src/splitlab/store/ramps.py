"""Promote-winner ramps in the app store: a plan of traffic steps the scheduler advances.

A ramp moves the winning variant's weight through ``steps`` (e.g. 5% → 25% → 50% → 100%,
each held for some hours): the winner gets the step's percent, the control the rest, any
other treatment nothing. Each step is applied through ``update_experiment`` (audited, the
edit a live experiment may still make) and leaves a ``ramp_step`` audit entry; the last
step completes the ramp and ships the experiment (rolling_out → shipped); a rollback ends
it (rolling_out → rolled_back) with its reason in the audit log.

``current_step`` moves only by a conditional update (``… WHERE id = ? AND current_step =
?``) in the same transaction as the weights it applies, so whichever process runs the
scheduler, and however often it crashes, a step is neither skipped nor applied twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from splitlab.domain import ExperimentPatch, Principal, Role, Status
from splitlab.domain.experiments import Variant
from splitlab.errors import ConflictError, NotFoundError, ValidationError, from_pydantic
from splitlab.store.audit import write_audit
from splitlab.store.experiments import get_experiment, spec_from_row, transition, update_experiment
from splitlab.store.tables import RampRow

ACTIVE = "active"
COMPLETED = "completed"
ROLLED_BACK = "rolled_back"
CANCELLED = "cancelled"
"""A ramp's states: advanced by the scheduler while ``active``; ``completed`` after its last
step shipped the experiment; ``rolled_back`` by a person or a guardrail breach;
``cancelled`` when the experiment left rolling_out some other way."""

MAX_STEPS = 20
STARTABLE = frozenset({Status.READOUT, Status.ROLLING_OUT})
"""Where a ramp may begin: a readout is moved to rolling_out by ``create_ramp``."""


class RampStep(BaseModel):
    """One step of a ramp: the winner's share of traffic and how long it is held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: float = Field(gt=0, le=100, description="The winner's share of traffic, in %.")
    hold_hours: float = Field(
        default=0, ge=0, le=24 * 365, description="Hours to hold before the next step."
    )


class _Plan(BaseModel):
    steps: list[RampStep] = Field(min_length=1, max_length=MAX_STEPS)


def parse_steps(steps: Any) -> list[RampStep]:
    """Validate a rollout plan: 1–20 steps, percents strictly increasing in (0, 100], the
    last 100, holds ≥ 0. Raises ``ValidationError`` naming the offending step."""
    try:
        parsed = _Plan.model_validate({"steps": steps}).steps
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from exc
    problems = [
        {"loc": ["steps", i, "percent"], "msg": "percents must increase step by step"}
        for i in range(1, len(parsed))
        if parsed[i].percent <= parsed[i - 1].percent
    ]
    if parsed[-1].percent != 100:
        problems.append(
            {"loc": ["steps", len(parsed) - 1, "percent"], "msg": "the last step must be 100"}
        )
    if problems:
        raise ValidationError("invalid rollout plan", details=problems)
    return parsed


def _principal(actor: Principal | str) -> Principal:
    """The store's lifecycle functions take a principal; the scheduler and callers that only
    know a name pass a string (the role is not consulted by these functions)."""
    if isinstance(actor, Principal):
        return actor
    return Principal(username=actor, role=Role.EDITOR)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    """ISO 8601 in UTC (SQLite returns naive datetimes; every stored time is UTC)."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def ramp_steps(ramp: RampRow) -> list[RampStep]:
    """The stored steps of ``ramp``, typed."""
    return [RampStep.model_validate(step) for step in ramp.steps]


def weights_for(variants: list[Variant], *, winner: str, percent: float) -> list[Variant]:
    """The variants with the winner at ``percent`` %, the control at the rest, any other
    treatment at 0 (their order and everything but the weight unchanged)."""
    share = round(percent / 100, 12)
    return [
        v.model_copy(
            update={"weight": share if v.key == winner else (1 - share if v.is_control else 0.0)}
        )
        for v in variants
    ]


def _audit(
    session: Session, ramp: RampRow, *, action: str, actor: str, reason: str = "", **changes: Any
) -> None:
    write_audit(
        session=session,
        entity="experiment",
        entity_key=ramp.experiment_key,
        action=action,
        actor=actor,
        reason=reason,
        changes={"ramp_id": ramp.id, "variant": ramp.variant, **changes},
    )


def _apply_step(
    session: Session, ramp: RampRow, *, index: int, actor: Principal, now: datetime
) -> None:
    """Set the weights of step ``index`` (audited); the last step ships the experiment."""
    steps = ramp_steps(ramp)
    step = steps[index]
    row = get_experiment(session=session, key=ramp.experiment_key)
    variants = weights_for(spec_from_row(row).variants, winner=ramp.variant, percent=step.percent)
    reason = f"ramp {ramp.id} step {index + 1}/{len(steps)}: {ramp.variant} at {step.percent:g}%"
    update_experiment(
        session=session,
        key=ramp.experiment_key,
        patch=ExperimentPatch(variants=variants),
        actor=actor,
        reason=reason,
    )
    last = index == len(steps) - 1
    ramp.next_at = None if last else now + timedelta(hours=step.hold_hours)
    ramp.updated_at = now
    _audit(
        session,
        ramp,
        action="ramp_step",
        actor=actor.username,
        reason=reason,
        step=index,
        steps=len(steps),
        percent=step.percent,
    )
    if last:
        ramp.status = COMPLETED
        transition(
            session=session,
            key=ramp.experiment_key,
            to=Status.SHIPPED,
            actor=actor,
            reason=f"ramp {ramp.id} reached 100% for {ramp.variant}",
        )
        _audit(session, ramp, action="ramp_complete", actor=actor.username)


def create_ramp(
    *,
    session: Session,
    key: str,
    variant: str,
    steps: Any,
    actor: Principal | str,
    now: datetime | None = None,
) -> RampRow:
    """Start a ramp of ``variant`` on experiment ``key`` (audited) and apply its first step.

    ``steps`` is a list of ``{"percent": …, "hold_hours": …}`` (see :func:`parse_steps`). The
    experiment must be in readout (moved here to rolling_out) or rolling_out, the variant one
    of its treatments, and no other ramp of it active. The scheduler applies the later steps
    once each step's hold has passed, checking guardrails first."""
    principal = _principal(actor)
    parsed = parse_steps(steps)
    moment = now or _now()
    row = get_experiment(session=session, key=key)
    spec = spec_from_row(row)
    target = next((v for v in spec.variants if v.key == variant), None)
    if target is None or target.is_control:
        raise ValidationError(
            f"variant {variant!r} is not a treatment of experiment {key!r}",
            details=[{"loc": ["variant"], "msg": "must name a treatment variant"}],
        )
    status = Status(row.status)
    if status not in STARTABLE:
        raise ConflictError(
            f"experiment {key!r} is {status}: a ramp starts from readout or rolling_out",
            details={"status": status},
        )
    if active_ramp(session=session, key=key) is not None:
        raise ConflictError(f"experiment {key!r} already has an active ramp")
    if status is Status.READOUT:
        transition(
            session=session,
            key=key,
            to=Status.ROLLING_OUT,
            actor=principal,
            reason=f"promote {variant} by a ramp",
        )
    ramp = RampRow(
        experiment_key=key,
        variant=variant,
        steps=[s.model_dump() for s in parsed],
        current_step=0,
        status=ACTIVE,
        created_by=principal.username,
        created_at=moment,
        updated_at=moment,
    )
    session.add(ramp)
    session.flush()
    _audit(
        session,
        ramp,
        action="ramp_create",
        actor=principal.username,
        steps=[s.model_dump() for s in parsed],
    )
    _apply_step(session, ramp, index=0, actor=principal, now=moment)
    session.flush()
    return ramp


def advance_ramp(
    *,
    session: Session,
    ramp_id: int,
    expected_step: int,
    actor: Principal | str,
    now: datetime | None = None,
) -> RampRow | None:
    """Apply step ``expected_step + 1`` of ramp ``ramp_id`` — only if the ramp is still
    active at ``expected_step`` (a conditional update); ``None`` when another runner got there
    first or the ramp ended. The step's weights and audit entries are written in the same
    transaction, so a crash before the commit leaves the ramp where it was."""
    principal = _principal(actor)
    moment = now or _now()
    claimed = session.execute(
        update(RampRow)
        .where(
            RampRow.id == ramp_id,
            RampRow.current_step == expected_step,
            RampRow.status == ACTIVE,
        )
        .values(current_step=expected_step + 1, updated_at=moment)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    ramp = session.get(RampRow, ramp_id, populate_existing=True)
    assert ramp is not None  # we just updated it
    if expected_step + 1 >= len(ramp.steps):
        raise ConflictError(f"ramp {ramp_id} has no step {expected_step + 2}")
    experiment = get_experiment(session=session, key=ramp.experiment_key)
    if experiment.status != Status.ROLLING_OUT:
        # shipped or rolled back by a person meanwhile: the ramp has nothing left to do
        ramp.current_step = expected_step
        ramp.status = CANCELLED
        ramp.next_at = None
        ramp.last_error = f"experiment is {experiment.status}"
        _audit(
            session, ramp, action="ramp_cancel", actor=principal.username, reason=ramp.last_error
        )
        session.flush()
        return ramp
    ramp.last_error = ""
    _apply_step(session, ramp, index=expected_step + 1, actor=principal, now=moment)
    session.flush()
    return ramp


def rollback_ramp(
    *,
    session: Session,
    key: str,
    reason: str,
    actor: Principal | str,
    evidence: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> RampRow:
    """Roll back the active ramp of ``key``: the ramp ends ``rolled_back`` and the experiment
    goes rolling_out → rolled_back, the reason (and any evidence) in the audit log. The
    ramp's status is changed by a conditional update, so two rollbacks cannot both happen."""
    if not reason.strip():
        raise ValidationError(
            "a rollback needs a reason", details=[{"loc": ["reason"], "msg": "required"}]
        )
    principal = _principal(actor)
    moment = now or _now()
    ramp = active_ramp(session=session, key=key)
    if ramp is None:
        raise ConflictError(f"experiment {key!r} has no active ramp to roll back")
    ended = session.execute(
        update(RampRow)
        .where(RampRow.id == ramp.id, RampRow.status == ACTIVE)
        .values(status=ROLLED_BACK, next_at=None, last_error=reason, updated_at=moment)
        .execution_options(synchronize_session=False)
    )
    if getattr(ended, "rowcount", 0) != 1:
        raise ConflictError(f"the ramp of experiment {key!r} ended meanwhile")
    session.refresh(ramp)
    _audit(
        session,
        ramp,
        action="ramp_rollback",
        actor=principal.username,
        reason=reason,
        step=ramp.current_step,
        evidence=evidence,
    )
    transition(session=session, key=key, to=Status.ROLLED_BACK, actor=principal, reason=reason)
    session.flush()
    return ramp


def note_ramp_error(*, session: Session, ramp_id: int, error: str) -> None:
    """Keep why the ramp's next step could not be checked (shown with the ramp)."""
    ramp = session.get(RampRow, ramp_id)
    if ramp is not None:
        ramp.last_error = error[:2000]


def active_ramp(*, session: Session, key: str) -> RampRow | None:
    """The active ramp of experiment ``key``, if any."""
    return session.scalar(
        select(RampRow).where(RampRow.experiment_key == key, RampRow.status == ACTIVE)
    )


def latest_ramp(*, session: Session, key: str) -> RampRow:
    """The most recent ramp of experiment ``key`` (active or not); ``NotFoundError`` when it
    never had one."""
    get_experiment(session=session, key=key)
    ramp = session.scalar(
        select(RampRow).where(RampRow.experiment_key == key).order_by(RampRow.id.desc()).limit(1)
    )
    if ramp is None:
        raise NotFoundError(f"experiment {key!r} has no ramp")
    return ramp


def active_ramps(*, session: Session) -> list[RampRow]:
    """Every active ramp, oldest first."""
    return list(
        session.scalars(select(RampRow).where(RampRow.status == ACTIVE).order_by(RampRow.id))
    )


def due_ramps(*, session: Session, now: datetime) -> list[RampRow]:
    """Active ramps whose current step's hold has passed at ``now``, oldest first."""
    return list(
        session.scalars(
            select(RampRow)
            .where(RampRow.status == ACTIVE, RampRow.next_at.is_not(None), RampRow.next_at <= now)
            .order_by(RampRow.id)
        )
    )


def ramp_to_dict(ramp: RampRow) -> dict[str, Any]:
    """The JSON form of a ramp, with the current percent and when the next step is due."""
    steps = ramp_steps(ramp)
    current = steps[ramp.current_step] if 0 <= ramp.current_step < len(steps) else None
    return {
        "id": ramp.id,
        "experiment": ramp.experiment_key,
        "variant": ramp.variant,
        "status": ramp.status,
        "steps": [s.model_dump() for s in steps],
        "current_step": ramp.current_step,
        "current_percent": current.percent if current else None,
        "next_at": _iso(ramp.next_at) if ramp.next_at else None,
        "last_error": ramp.last_error,
        "created_by": ramp.created_by,
        "created_at": _iso(ramp.created_at),
        "updated_at": _iso(ramp.updated_at),
    }

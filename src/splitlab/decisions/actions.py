"""Human decisions: ship (optionally by a ramp), kill, roll back or extend an experiment,
following or overriding the engine's recommendation.

A decision is recorded with its rationale and linked to the latest stored recommendation.
It is an *override* when it disagrees with that recommendation (``AGREES``), or when there
is no recommendation to follow. An override waits as ``pending_approval`` while the
resolved policy says ``override_requires_approval`` (the default), until a reviewer other
than its author approves it (``approve_decision``) or rejects it. Otherwise — and on
approval — it is *applied*: the experiment moves through the lifecycle
(``store.experiments.transition``; a running experiment is stopped first, every move
audited with its actor and reason), a ship with a rollout plan starts a ramp
(``store.ramps.create_ramp``), and an extension moves the schedule
(``store.decisions.extend_schedule``).

Each decision runs in one transaction that begins by locking the experiment
(``store.decisions.lock_experiment``): a refused decision changes nothing, and of two
simultaneous decisions on one experiment the second sees what the first did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from splitlab.decisions.recommendation import Code
from splitlab.decisions.requests import (
    Action,
    DecisionRequest,
    RampPlan,
    ReviewRequest,
    as_request,
    problem,
)
from splitlab.decisions.service import resolve_policy
from splitlab.domain import Principal, Role, Status
from splitlab.errors import (
    ConflictError,
    PermissionDeniedError,
    from_pydantic,
)
from splitlab.store import decisions as repo
from splitlab.store.experiments import get_experiment, spec_from_row, transition
from splitlab.store.ramps import active_ramp, create_ramp, rollback_ramp
from splitlab.store.recommendations import latest_recommendation, latest_snapshot_texts
from splitlab.store.tables import DecisionRow, ExperimentRow, RecommendationRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from splitlab.services import Services


AGREES: dict[Action, frozenset[Code]] = {
    Action.SHIP: frozenset({Code.SHIP_GLOBAL, Code.SHIP_TARGETED_SEGMENTS}),
    Action.KILL: frozenset(
        {Code.KILL, Code.ROLLBACK, Code.HOLD_GUARDRAIL_RISK, Code.HOLD_INCONCLUSIVE}
    ),
    Action.ROLLBACK: frozenset({Code.ROLLBACK, Code.KILL, Code.HOLD_GUARDRAIL_RISK}),
    Action.EXTEND: frozenset({Code.KEEP_RUNNING, Code.PENDING_UNDERPOWERED}),
}
"""The recommendations each action follows. Killing follows every "do not ship" advice;
rolling back follows advice that the treatment does harm; extending follows "too early".
A ship follows a ship recommendation only for the same variant — and for
``SHIP_TARGETED_SEGMENTS`` the same segments; extending an inconclusive, mature experiment
(chasing significance) or stopping one the engine says is too early are overrides."""

LIFECYCLE: dict[tuple[Action, Status], tuple[Status, ...]] = {
    (Action.SHIP, Status.RUNNING): (Status.STOPPED, Status.READOUT, Status.SHIPPED),
    (Action.SHIP, Status.STOPPED): (Status.READOUT, Status.SHIPPED),
    (Action.SHIP, Status.READOUT): (Status.SHIPPED,),
    (Action.KILL, Status.RUNNING): (Status.STOPPED, Status.READOUT, Status.KILLED),
    (Action.KILL, Status.STOPPED): (Status.READOUT, Status.KILLED),
    (Action.KILL, Status.READOUT): (Status.KILLED,),
    (Action.ROLLBACK, Status.RUNNING): (Status.ROLLED_BACK,),
    (Action.ROLLBACK, Status.ROLLING_OUT): (Status.ROLLED_BACK,),
    (Action.EXTEND, Status.RUNNING): (),
}
"""The lifecycle moves that apply each action from each state (``domain.lifecycle``). A ship
by a ramp stops at readout and ``create_ramp`` takes it to rolling_out; a rollback of a
rollout ends its active ramp first."""


# ---------------------------------------------------------------- agreement


def _recommended(recommendation: RecommendationRow) -> tuple[str | None, list[dict[str, str]]]:
    """The variant and segments a stored recommendation names (its JSON form)."""
    payload = recommendation.payload or {}
    variant = payload.get("variant")
    segments = payload.get("segments") or []
    return (
        variant if isinstance(variant, str) else None,
        [s for s in segments if isinstance(s, dict)],
    )


def _segment_set(segments: Sequence[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    return frozenset((str(s.get("name")), str(s.get("value"))) for s in segments)


def disagreement(
    *,
    action: Action,
    variant: str | None,
    segments: Sequence[Mapping[str, Any]] | None,
    recommendation: RecommendationRow | None,
) -> str | None:
    """Why the decision overrides ``recommendation`` (None when it follows it)."""
    if recommendation is None:
        return "no recommendation to follow"
    code = recommendation.code
    if code not in AGREES[action]:
        return f"{action.value} against the recommendation {code}"
    if action is not Action.SHIP:
        return None
    wanted_variant, wanted_segments = _recommended(recommendation)
    if wanted_variant is not None and variant != wanted_variant:
        return f"ships {variant}; the recommendation ({code}) is {wanted_variant}"
    if code == Code.SHIP_GLOBAL and segments:
        return f"ships to some segments; the recommendation is {code}"
    if code == Code.SHIP_TARGETED_SEGMENTS and _segment_set(segments or []) != _segment_set(
        wanted_segments
    ):
        return "ships to other segments than the recommendation names"
    return None


# ---------------------------------------------------------------- checks on the experiment


def check_applicable(*, action: Action, row: ExperimentRow, ramp: bool) -> tuple[Status, ...]:
    """The lifecycle moves that apply ``action`` to the experiment now; ``ConflictError``
    saying why when it cannot be applied in its state."""
    status = Status(row.status)
    key = row.key
    path = LIFECYCLE.get((action, status))
    if path is not None:
        return path[:-1] if ramp else path
    if status in (Status.SHIPPED, Status.KILLED, Status.ROLLED_BACK):
        why = f"experiment {key!r} is {status}: it is already decided"
    elif status in (Status.DRAFT, Status.REVIEW, Status.SCHEDULED):
        why = f"experiment {key!r} is {status}: it has not run, there is nothing to decide"
    elif status is Status.ROLLING_OUT:
        why = (
            f"experiment {key!r} is rolling out: its ramp ships it at 100%; roll it back to stop it"
        )
    elif action is Action.ROLLBACK:
        why = f"experiment {key!r} is {status}: nothing is live to roll back; kill it instead"
    else:  # extend after the experiment stopped
        why = f"experiment {key!r} is {status}: only a running experiment can be extended"
    raise ConflictError(why, details={"status": status, "action": action.value})


def _resolve_variant(
    request: DecisionRequest, row: ExperimentRow, recommendation: RecommendationRow | None
) -> str | None:
    """The treatment a ship ships: the one named, else the recommended one, else the only
    one. ``ValidationError`` when it is not a treatment of the experiment."""
    if request.action is not Action.SHIP:
        return None
    spec = spec_from_row(row)
    treatments = [v.key for v in spec.variants if not v.is_control]
    variant = request.variant
    if variant is None and recommendation is not None:
        variant = (
            _recommended(recommendation)[0] if recommendation.code in AGREES[Action.SHIP] else None
        )
    if variant is None and len(treatments) == 1:
        variant = treatments[0]
    if variant is None:
        raise problem(["variant"], f"name the treatment to ship: one of {', '.join(treatments)}")
    if variant not in treatments:
        raise problem(
            ["variant"],
            f"{variant!r} is not a treatment of experiment {row.key!r} "
            f"(treatments: {', '.join(treatments)})",
        )
    if request.segments:
        registered = set(spec.plan.segments)
        for i, segment in enumerate(request.segments):
            if segment.name not in registered:
                raise problem(
                    ["segments", i, "name"],
                    f"{segment.name!r} is not a pre-registered segment of {row.key!r} "
                    f"(registered: {', '.join(sorted(registered)) or 'none'})",
                )
    return variant


def observed_segments(*, session: Session, key: str) -> dict[str, set[str]]:
    """The segment values the latest snapshot of ``key`` has results for, by segment name
    (empty when it was never analysed)."""
    found = latest_snapshot_texts(session=session, keys=[key]).get(key)
    if found is None:
        return {}
    seen: dict[str, set[str]] = {}
    for result in json.loads(found[1]).get("results") or []:
        segment = result.get("segment") if isinstance(result, dict) else None
        if isinstance(segment, dict) and "name" in segment:
            seen.setdefault(str(segment["name"]), set()).add(str(segment.get("value")))
    return seen


def _check_segment_values(request: DecisionRequest, seen: Mapping[str, set[str]]) -> None:
    """ValidationError for a segment named twice, or a value the latest results never saw
    (shipping to ``country=XX`` would ship to nobody); names without results pass."""
    named: set[tuple[str, str]] = set()
    for i, segment in enumerate(request.segments or []):
        pair = (segment.name, segment.value)
        if pair in named:
            raise problem(["segments", i], f"{segment.name}={segment.value} is named twice")
        named.add(pair)
        values = seen.get(segment.name)
        if values and segment.value not in values:
            shown = ", ".join(sorted(values)[:20])
            raise problem(
                ["segments", i, "value"],
                f"{segment.value!r} is not a value of {segment.name!r} in the latest results "
                f"(seen: {shown})",
            )


def check_approver(*, approver: Principal, author: str, comment: str) -> None:
    """Raise unless ``approver`` may approve a decision recorded by ``author``: the review
    rule of ``domain.review.check_reviewer`` applied to a decision — the reviewer or admin
    role, and not the decision's author (an admin may approve their own, with a reason)."""
    if not approver.can_review():
        raise PermissionDeniedError(
            "approving a decision needs the reviewer or admin role",
            details={"role": approver.role},
        )
    if approver.username != author:
        return
    if approver.role is not Role.ADMIN:
        raise PermissionDeniedError(
            "the author of a decision cannot approve it (an admin may, with a reason)",
            details={"reviewer": approver.username, "author": author},
        )
    if not comment.strip():
        raise problem(["comment"], "required when an admin approves their own decision")


# ---------------------------------------------------------------- applying


def _apply(
    session: Session,
    decision: DecisionRow,
    row: ExperimentRow,
    *,
    path: tuple[Status, ...],
    actor: Principal,
    why: str,
) -> None:
    """Move the experiment along ``path`` (each move audited by ``transition``), then start
    the ramp or extend the schedule the decision asks for."""
    key = row.key
    action = Action(decision.action)
    details = decision.details or {}
    if action is Action.ROLLBACK and active_ramp(session=session, key=key) is not None:
        rollback_ramp(session=session, key=key, reason=why, actor=actor)
        return
    for target in path:
        transition(session=session, key=key, to=target, actor=actor, reason=why)
    if action is Action.SHIP and details.get("ramp"):
        assert decision.variant is not None  # a ship always names its variant
        ramp = create_ramp(
            session=session,
            key=key,
            variant=decision.variant,
            steps=details["ramp"]["steps"],
            actor=actor,
        )
        repo.set_ramp(session=session, decision=decision, ramp_id=ramp.id)
    elif action is Action.EXTEND:
        repo.extend_schedule(
            session=session, key=key, days=int(details["days"]), actor=actor.username, reason=why
        )


def _label(decision: DecisionRow) -> str:
    """``decision 7 (ship one-page, an override of HOLD_INCONCLUSIVE)`` for the audit log."""
    what = decision.action + (f" {decision.variant}" if decision.variant else "")
    if decision.override:
        what += f", an override of {decision.recommendation_code or 'no recommendation'}"
    return f"decision {decision.id} ({what})"


def _approval_required(*, services: Services, key: str) -> bool:
    """Whether the experiment's resolved policy makes an override wait for approval."""
    return resolve_policy(services=services, key=key).override_requires_approval


# ---------------------------------------------------------------- the service


def record_decision(
    *,
    services: Services,
    key: str,
    action: Action | str,
    rationale: str,
    actor: Principal,
    variant: str | None = None,
    segments: Sequence[Mapping[str, Any]] | None = None,
    ramp: Mapping[str, Any] | Sequence[Mapping[str, Any]] | RampPlan | None = None,
    days: int | None = None,
    follows: int | None = None,
) -> dict[str, Any]:
    """Record a decision on experiment ``key`` and apply it unless it must wait for approval.

    ``ramp`` (ship only) is a rollout plan, ``{"steps": [{"percent", "hold_hours"}, …]}`` or
    the list of steps; ``days`` (extend only) the days to add; ``follows`` the id of the
    recommendation the decision was made on — refused (``ConflictError``) when a newer one
    exists, so nobody decides on stale advice. Returns the decision (``decision_to_dict``)
    with ``experiment_status`` after it.

    Raises ``ValidationError`` for bad input (empty or oversized rationale, unknown action
    or variant, fields that do not go with the action), ``PermissionDeniedError`` without
    editing rights, ``NotFoundError`` for an unknown experiment, ``ConflictError`` when the
    experiment's state does not allow the action, a decision awaits approval, or the
    recommendation changed. Nothing is written when it raises."""
    if not actor.can_edit():
        raise PermissionDeniedError(
            "deciding needs an editor role", details={"role": actor.role, "scope": actor.scope}
        )
    request = as_request(
        action=action,
        rationale=rationale,
        variant=variant,
        segments=list(segments) if segments is not None else None,
        ramp=ramp.model_dump() if isinstance(ramp, RampPlan) else ramp,
        days=days,
        follows=follows,
    )
    with services.sessions() as session:
        get_experiment(session=session, key=key)  # 404 before the policy is resolved
    needs_approval = _approval_required(services=services, key=key)
    with services.sessions.begin() as session:
        row = repo.lock_experiment(session=session, key=key)
        waiting = repo.pending_decision(session=session, key=key)
        if waiting is not None:
            raise ConflictError(
                f"decision {waiting.id} on {key!r} awaits approval: approve or reject it first",
                details={"pending": waiting.id},
            )
        path = check_applicable(action=request.action, row=row, ramp=request.ramp is not None)
        recommendation = latest_recommendation(session=session, key=key)
        if request.follows is not None:
            _check_follows(session, key, request.follows, recommendation)
        chosen = _resolve_variant(request, row, recommendation)
        if request.segments:
            _check_segment_values(request, observed_segments(session=session, key=key))
        segments_out = [s.model_dump() for s in request.segments] if request.segments else None
        why_override = disagreement(
            action=request.action,
            variant=chosen,
            segments=segments_out,
            recommendation=recommendation,
        )
        waits = why_override is not None and needs_approval
        details: dict[str, Any] = {}
        if request.ramp is not None:
            details["ramp"] = request.ramp.model_dump()
        if request.days is not None:
            details["days"] = request.days
        if why_override is not None:
            details["override"] = why_override
        decision = repo.create_decision(
            session=session,
            key=key,
            action=request.action.value,
            rationale=request.rationale,
            actor=actor.username,
            status=repo.PENDING if waits else repo.APPLIED,
            override=why_override is not None,
            variant=chosen,
            segments=segments_out,
            recommendation=recommendation,
            details=details,
        )
        if not waits:
            _apply(session, decision, row, path=path, actor=actor, why=_label(decision))
        return _out(session, decision)


def _check_follows(
    session: Session, key: str, follows: int, latest: RecommendationRow | None
) -> None:
    if repo.find_recommendation(session=session, key=key, recommendation_id=follows) is None:
        raise problem(["follows"], f"experiment {key!r} has no recommendation {follows}")
    if latest is not None and latest.id != follows:
        raise ConflictError(
            f"recommendation {follows} is no longer the latest for {key!r} "
            f"({latest.id} is: {latest.code}); look at it before deciding",
            details={"follows": follows, "latest": latest.id, "code": latest.code},
        )


def _review(
    *,
    services: Services,
    key: str,
    decision_id: int,
    reviewer: Principal,
    comment: str,
    approve: bool,
    via: str | None,
) -> dict[str, Any]:
    try:
        review = ReviewRequest.model_validate({"comment": comment})
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from exc
    with services.sessions.begin() as session:
        row = repo.lock_experiment(session=session, key=key)
        decision = repo.get_decision(session=session, key=key, decision_id=decision_id)
        if decision.status != repo.PENDING:
            raise ConflictError(
                f"decision {decision_id} is {decision.status}, not awaiting approval",
                details={"id": decision_id, "status": decision.status},
            )
        if approve:
            check_approver(approver=reviewer, author=decision.actor, comment=review.comment)
            path = check_applicable(
                action=Action(decision.action),
                row=row,
                ramp=bool((decision.details or {}).get("ramp")),
            )
        elif reviewer.username != decision.actor and not reviewer.can_review():
            raise PermissionDeniedError(
                "rejecting a decision needs the reviewer or admin role (or being its author)",
                details={"role": reviewer.role},
            )
        repo.close_review(
            session=session,
            decision=decision,
            approved=approve,
            reviewer=reviewer.username,
            comment=review.comment,
            via=via,
        )
        if approve:
            why = f"{_label(decision)} by {decision.actor}, approved by {reviewer.username}"
            _apply(session, decision, row, path=path, actor=reviewer, why=why)
        return _out(session, decision)


def approve_decision(
    *,
    services: Services,
    key: str,
    decision_id: int,
    reviewer: Principal,
    comment: str = "",
    via: str | None = None,
) -> dict[str, Any]:
    """Approve a pending override and apply it, in one transaction (audited as
    ``decision_approved``, then each lifecycle move with the reviewer as actor).

    ``PermissionDeniedError`` unless ``reviewer`` has the reviewer or admin role and is not
    the decision's author (``check_approver``); ``ConflictError`` when the decision is not
    pending or the experiment's state no longer allows it (the decision then stays
    pending: reject it). ``via`` says how the approval reached us when not with the
    reviewer's own credentials (the CLI's ``--as``)."""
    return _review(
        services=services,
        key=key,
        decision_id=decision_id,
        reviewer=reviewer,
        comment=comment,
        approve=True,
        via=via,
    )


def reject_decision(
    *,
    services: Services,
    key: str,
    decision_id: int,
    reviewer: Principal,
    comment: str = "",
    via: str | None = None,
) -> dict[str, Any]:
    """Reject a pending decision (audited as ``decision_rejected``); the experiment stays as
    it is. A reviewer or admin may reject; its author may withdraw it the same way."""
    return _review(
        services=services,
        key=key,
        decision_id=decision_id,
        reviewer=reviewer,
        comment=comment,
        approve=False,
        via=via,
    )


def list_decisions(*, services: Services, key: str) -> list[dict[str, Any]]:
    """The decisions on experiment ``key``, newest first (``decision_to_dict``)."""
    with services.sessions() as session:
        return [repo.decision_to_dict(d) for d in repo.list_decisions(session=session, key=key)]


def _out(session: Session, decision: DecisionRow) -> dict[str, Any]:
    data = repo.decision_to_dict(decision)
    data["experiment_status"] = get_experiment(session=session, key=decision.experiment_key).status
    return data

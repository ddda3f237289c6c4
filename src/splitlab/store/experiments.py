"""Experiments in the app store: create, edit, transition, clone, notes and reviews.

Every mutation writes exactly one audit entry with the configuration snapshot after it; an
edit or a metric change that voids an approval writes a second one, ``approval_voided``.
The rules themselves (transition table, guards, what an approval is bound to, who may
review) live in ``splitlab.domain.lifecycle`` and ``splitlab.domain.review``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from splitlab.domain import (
    ExperimentPatch,
    ExperimentSpec,
    GuardrailRef,
    MetricDefinition,
    MetricRole,
    MetricsSpec,
    Principal,
    ReviewDecision,
    Status,
    ThresholdScale,
    check_transition,
)
from splitlab.domain.lifecycle import ANALYSING, AWAITING_START, check_edit
from splitlab.domain.limits import STORED
from splitlab.domain.review import changed_bound_fields, check_review, config_fingerprint
from splitlab.errors import (
    ConflictError,
    NotFoundError,
    TransitionError,
    ValidationError,
    from_pydantic,
)
from splitlab.store.audit import write_audit
from splitlab.store.metrics import (
    current_versions,
    get_metric,
    get_metric_version,
    metric_from_row,
    missing_metrics,
)
from splitlab.store.tables import (
    ExperimentMetricRow,
    ExperimentRow,
    NoteRow,
    ReviewRequestRow,
    ReviewRow,
    VariantRow,
)

SCALAR_FIELDS = (
    "name",
    "hypothesis",
    "predicted_outcome",
    "predicted_probability",
    "type",
    "team",
    "owner",
    "tags",
    "coverage",
    "seed",
    "hash_version",
    "start_at",
    "end_at",
)


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# ---------------------------------------------------------------- row <-> domain


def spec_from_row(row: ExperimentRow) -> ExperimentSpec:
    links = row.metric_links
    metrics = MetricsSpec(
        primary=next((m.metric_key for m in links if m.role == MetricRole.PRIMARY), None),
        secondary=[m.metric_key for m in links if m.role == MetricRole.SECONDARY],
        guardrails=[
            GuardrailRef(
                key=m.metric_key,
                margin=m.margin,
                margin_scale=ThresholdScale(m.margin_scale or ThresholdScale.RELATIVE),
            )
            for m in links
            if m.role == MetricRole.GUARDRAIL
        ],
    )
    return ExperimentSpec.model_validate(
        {
            "key": row.key,
            **{name: getattr(row, name) for name in SCALAR_FIELDS},
            "start_at": _aware(row.start_at),
            "end_at": _aware(row.end_at),
            "namespace": row.namespace,
            "costs": row.costs,
            "plan": row.plan,
            "metrics": metrics,
            "variants": [
                {
                    "key": v.key,
                    "name": v.name,
                    "weight": v.weight,
                    "is_control": v.is_control,
                    "payload": v.payload,
                }
                for v in row.variants
            ],
        },
        context=STORED,  # limits are checked on input; a row that predates one still reads
    )


def metric_versions(*, session: Session, row: ExperimentRow) -> dict[str, int | None]:
    """Metric key → the definition version the experiment uses: the one pinned when it
    started, else the current one (None for an unknown metric)."""
    pinned = {
        link.metric_key: link.metric_version
        for link in row.metric_links
        if link.metric_version is not None
    }
    current = current_versions(session=session, keys=[link.metric_key for link in row.metric_links])
    return {
        link.metric_key: pinned.get(link.metric_key, current.get(link.metric_key))
        for link in row.metric_links
    }


def metric_definitions(*, session: Session, row: ExperimentRow) -> dict[str, MetricDefinition]:
    """The definitions the experiment is analysed with, in the order of its metrics: the
    versions pinned when it started, else the current ones."""
    pinned = {
        link.metric_key: link.metric_version
        for link in row.metric_links
        if link.metric_version is not None
    }
    definitions = {}
    for key in dict.fromkeys(link.metric_key for link in row.metric_links):
        version = pinned.get(key)
        definitions[key] = (
            get_metric_version(session=session, key=key, version=version)
            if version is not None
            else metric_from_row(get_metric(session=session, key=key))
        )
    return definitions


def fingerprint(*, session: Session, row: ExperimentRow) -> str:
    """The fingerprint of the experiment's approval-bound configuration (domain.review)."""
    return config_fingerprint(spec_from_row(row), metric_versions(session=session, row=row))


def experiment_to_dict(row: ExperimentRow) -> dict[str, Any]:
    """The JSON form: the spec plus status and bookkeeping fields."""
    data = spec_from_row(row).model_dump(mode="json")
    session = object_session(row)
    if session is not None:
        versions = metric_versions(session=session, row=row)
        data.update(
            metric_versions=versions,
            config_fingerprint=config_fingerprint(spec_from_row(row), versions),
        )
    data.update(
        status=row.status,
        cloned_from=row.cloned_from,
        created_by=row.created_by,
        created_at=_aware(row.created_at).isoformat(),  # type: ignore[union-attr]
        updated_at=_aware(row.updated_at).isoformat(),  # type: ignore[union-attr]
    )
    return data


def _snapshot(row: ExperimentRow) -> dict[str, Any]:
    data = spec_from_row(row).model_dump(mode="json")
    data["status"] = row.status
    session = object_session(row)
    if session is not None:
        data["metric_versions"] = metric_versions(session=session, row=row)
    return data


def _record(
    session: Session,
    row: ExperimentRow,
    *,
    action: str,
    actor: str,
    at: datetime | None = None,
    **fields: Any,
) -> None:
    """Flush the change to ``row`` and write its one audit entry, with the new snapshot."""
    row.updated_at = at or now()
    session.flush()
    write_audit(
        session=session,
        entity="experiment",
        entity_key=row.key,
        action=action,
        actor=actor,
        snapshot=_snapshot(row),
        at=at,
        **fields,
    )


def _apply_spec(row: ExperimentRow, spec: ExperimentSpec) -> None:
    for name in SCALAR_FIELDS:
        setattr(row, name, getattr(spec, name))
    row.namespace = spec.namespace.model_dump(mode="json") if spec.namespace else None
    row.costs = spec.costs.model_dump(mode="json") if spec.costs else None
    row.plan = spec.plan.model_dump(mode="json")
    # a started experiment keeps the metric versions it pinned across edits of its weights
    pins = {m.metric_key: m.metric_version for m in row.metric_links if m.metric_version}
    session = object_session(row)
    if session is not None and row.id is not None:
        # delete the old children first: a unique (experiment, key) must not see both
        row.variants.clear()
        row.metric_links.clear()
        session.flush()
    row.variants = [
        VariantRow(
            position=i,
            key=v.key,
            name=v.name,
            weight=v.weight,
            is_control=v.is_control,
            payload=v.payload,
        )
        for i, v in enumerate(spec.variants)
    ]
    links: list[tuple[str, MetricRole, float | None]] = []
    if spec.metrics.primary:
        links.append((spec.metrics.primary, MetricRole.PRIMARY, None))
    links += [(k, MetricRole.SECONDARY, None) for k in spec.metrics.secondary]
    links += [(g.key, MetricRole.GUARDRAIL, g.margin) for g in spec.metrics.guardrails]
    absolute = {
        g.key
        for g in spec.metrics.guardrails
        if g.margin_scale is ThresholdScale.ABSOLUTE and g.margin is not None
    }
    row.metric_links = [
        ExperimentMetricRow(
            metric_key=k,
            role=r.value,
            position=i,
            margin=m,
            margin_scale=ThresholdScale.ABSOLUTE.value
            if r is MetricRole.GUARDRAIL and k in absolute
            else None,
            metric_version=pins.get(k),
        )
        for i, (k, r, m) in enumerate(links)
    ]


def _check_metrics_exist(session: Session, spec: ExperimentSpec) -> None:
    missing = set(missing_metrics(session=session, keys=spec.metrics.all_keys()))
    if not missing:
        return
    details: list[dict[str, Any]] = []
    if spec.metrics.primary in missing:
        details.append(
            {"loc": ["metrics", "primary"], "msg": f"unknown metric {spec.metrics.primary!r}"}
        )
    for i, key in enumerate(spec.metrics.secondary):
        if key in missing:
            details.append({"loc": ["metrics", "secondary", i], "msg": f"unknown metric {key!r}"})
    for i, guard in enumerate(spec.metrics.guardrails):
        if guard.key in missing:
            details.append(
                {"loc": ["metrics", "guardrails", i], "msg": f"unknown metric {guard.key!r}"}
            )
    raise ValidationError(
        "unknown metric definitions: " + ", ".join(sorted(missing)) + " (create them first)",
        details=details,
    )


# ---------------------------------------------------------------- reads


def get_experiment(*, session: Session, key: str) -> ExperimentRow:
    row = session.scalar(select(ExperimentRow).where(ExperimentRow.key == key))
    if row is None:
        raise NotFoundError(f"no experiment {key!r}", details={"key": key})
    return row


def experiment_keys(*, session: Session, statuses: Iterable[Status]) -> list[str]:
    """The keys of the experiments in any of ``statuses``."""
    wanted = [status.value for status in statuses]
    return list(session.scalars(select(ExperimentRow.key).where(ExperimentRow.status.in_(wanted))))


def list_experiments(
    *,
    session: Session,
    status: str | None = None,
    team: str | None = None,
    type: str | None = None,
    q: str | None = None,
) -> list[ExperimentRow]:
    query = select(ExperimentRow).order_by(ExperimentRow.created_at.desc(), ExperimentRow.id.desc())
    if status:
        query = query.where(ExperimentRow.status == status)
    if team:
        query = query.where(ExperimentRow.team == team)
    if type:
        query = query.where(ExperimentRow.type == type)
    if q:
        text = q.lower()  # matched literally: % and _ are not wildcards
        query = query.where(
            or_(
                func.lower(ExperimentRow.key).contains(text, autoescape=True),
                func.lower(ExperimentRow.name).contains(text, autoescape=True),
                func.lower(ExperimentRow.hypothesis).contains(text, autoescape=True),
            )
        )
    return list(session.scalars(query))


# ---------------------------------------------------------------- mutations


def create_experiment(
    *,
    session: Session,
    spec: ExperimentSpec,
    actor: Principal,
    cloned_from: str | None = None,
    at: datetime | None = None,
) -> ExperimentRow:
    """Create a draft (audited). ``at`` back-dates its creation (seeded demo history)."""
    if session.scalar(select(ExperimentRow.id).where(ExperimentRow.key == spec.key)) is not None:
        raise ConflictError(
            f"an experiment with key {spec.key!r} exists", details={"key": spec.key}
        )
    _check_metrics_exist(session, spec)
    if not spec.owner:
        spec = spec.model_copy(update={"owner": actor.username})
    row = ExperimentRow(key=spec.key, status=Status.DRAFT.value, created_by=actor.username)
    row.cloned_from = cloned_from
    if at is not None:
        row.created_at = row.updated_at = at
    _apply_spec(row, spec)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # another request created the key since the check above
        raise ConflictError(
            f"an experiment with key {spec.key!r} exists (created meanwhile)",
            details={"key": spec.key},
        ) from exc
    write_audit(
        session=session,
        entity="experiment",
        entity_key=row.key,
        action="clone" if cloned_from else "create",
        actor=actor.username,
        reason=f"cloned from {cloned_from}" if cloned_from else "",
        to_status=row.status,
        snapshot=_snapshot(row),
        at=at,
    )
    return row


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"before": before.get(k), "after": after.get(k)}
        for k in after
        if before.get(k) != after.get(k)
    }


def update_experiment(
    *,
    session: Session,
    key: str,
    patch: ExperimentPatch,
    actor: Principal,
    reason: str = "",
) -> ExperimentRow:
    """Apply a partial edit under the lifecycle's rules (``domain.lifecycle.check_edit``):
    drafts and experiments in review take any change; scheduled and live experiments only
    coverage and weights; ended ones nothing.

    An edit in review or scheduled that changes the approval-bound configuration voids the
    approval (a scheduled experiment goes back to review)."""
    row = get_experiment(session=session, key=key)
    status = Status(row.status)
    before = spec_from_row(row)
    versions_before = metric_versions(session=session, row=row)
    changes_in = patch.model_dump(exclude_unset=True)
    merged = before.model_dump() | changes_in
    try:
        after = ExperimentSpec.model_validate(merged)
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from exc
    check_edit(key=key, status=status, before=before, after=after, fields=changes_in)
    _check_metrics_exist(session, after)
    changes = _diff(before.model_dump(mode="json"), after.model_dump(mode="json"))
    if not changes:
        return row
    _apply_spec(row, after)
    _record(session, row, action="update", actor=actor.username, reason=reason, changes=changes)
    if status in AWAITING_START:
        bound = changed_bound_fields(
            before, after, versions_before, metric_versions(session=session, row=row)
        )
        if bound:
            _void_approval(session, row, actor=actor, because=", ".join(bound) + " changed")
    return row


def _void_approval(session: Session, row: ExperimentRow, *, actor: Principal, because: str) -> None:
    """Void the approval of an experiment in review or scheduled whose configuration changed:
    the approved request is closed as ``voided``, a new one is opened, a scheduled experiment
    goes back to review, and the audit log says why. Nothing happens without an approval."""
    request = _open_request(session, row)
    if request is None or request.state != "approved":
        return
    request.state = "voided"
    request.closed_at = now()
    session.add(
        ReviewRequestRow(
            experiment_id=row.id, requested_by=actor.username, reviewers=request.reviewers
        )
    )
    from_status = row.status
    row.status = Status.REVIEW.value
    _record(
        session,
        row,
        action="approval_voided",
        actor=actor.username,
        reason=f"approval voided: {because}",
        from_status=from_status,
        to_status=row.status,
    )


def metric_changed(
    *, session: Session, key: str, version: int, fields: dict[str, Any], actor: Principal
) -> None:
    """Metric ``key`` is now at ``version``: audit it on every started, unfinished experiment
    that uses it (they keep analysing the version they pinned) and void the approvals of the
    experiments in review or scheduled that use it."""
    users = session.scalars(
        select(ExperimentRow)
        .where(
            ExperimentRow.id.in_(
                select(ExperimentMetricRow.experiment_id).where(
                    ExperimentMetricRow.metric_key == key
                )
            )
        )
        .order_by(ExperimentRow.id)
    )
    changed = ", ".join(name for name in fields if name != "version")
    for row in users:
        status = Status(row.status)
        if status in AWAITING_START:
            _void_approval(
                session,
                row,
                actor=actor,
                because=f"metric_versions changed (metric {key} is now version {version})",
            )
        elif status in ANALYSING:
            pinned = next((m.metric_version for m in row.metric_links if m.metric_key == key), None)
            _record(
                session,
                row,
                action="metric_changed",
                actor=actor.username,
                reason=(
                    f"metric {key} is now version {version} ({changed} changed); "
                    f"this experiment keeps analysing version {pinned}"
                ),
                changes={"metric": key, "version": version, "pinned_version": pinned},
            )


def delete_experiment(*, session: Session, key: str, actor: Principal) -> None:
    row = get_experiment(session=session, key=key)
    if row.status != Status.DRAFT:
        raise ConflictError(
            f"only drafts can be deleted; {key!r} is {row.status}", details={"status": row.status}
        )
    snapshot = _snapshot(row)
    session.delete(row)
    write_audit(
        session=session,
        entity="experiment",
        entity_key=key,
        action="delete",
        actor=actor.username,
        from_status=Status.DRAFT.value,
        snapshot=snapshot,
    )


def _open_request(session: Session, row: ExperimentRow) -> ReviewRequestRow | None:
    return session.scalar(
        select(ReviewRequestRow)
        .where(ReviewRequestRow.experiment_id == row.id)
        .order_by(ReviewRequestRow.id.desc())
        .limit(1)
    )


def _approves_current(
    session: Session, row: ExperimentRow, request: ReviewRequestRow | None
) -> bool:
    """Whether ``request`` carries an approval of the experiment's configuration as it is now
    (the fingerprint recorded with the approval equals the current one)."""
    if request is None or request.state != "approved":
        return False
    approvals = session.scalars(
        select(ReviewRow.fingerprint).where(
            ReviewRow.request_id == request.id,
            ReviewRow.decision == ReviewDecision.APPROVE.value,
        )
    )
    return fingerprint(session=session, row=row) in set(approvals)


def _pin_metric_versions(session: Session, row: ExperimentRow) -> None:
    """Record, on starting, the metric definition versions the experiment is analysed with."""
    current = current_versions(session=session, keys=[m.metric_key for m in row.metric_links])
    for link in row.metric_links:
        if link.metric_version is None:
            link.metric_version = current.get(link.metric_key)


def _claim_status(session: Session, row: ExperimentRow, *, current: Status, to: Status) -> None:
    """Move the stored status from ``current`` to ``to`` only if no one moved it since it was
    read (a conditional update): of two concurrent transitions — a decision and the scheduler,
    say — the second gets a 409 instead of silently overwriting the first."""
    claimed = session.execute(
        update(ExperimentRow)
        .where(ExperimentRow.id == row.id, ExperimentRow.status == current.value)
        .values(status=to.value)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"experiment {row.key!r} changed state while moving it to {to}; reload and retry",
            details={"from": current.value, "to": to.value},
        )
    row.status = to.value


def transition(
    *,
    session: Session,
    key: str,
    to: Status,
    actor: Principal,
    reason: str = "",
    reviewers: list[str] | None = None,
    at: datetime | None = None,
) -> ExperimentRow:
    """Move ``key`` to ``to`` (audited). ``at`` back-dates the move (seeded demo history)."""
    moment = at or now()
    row = get_experiment(session=session, key=key)
    current = Status(row.status)
    spec = spec_from_row(row)
    request = _open_request(session, row)
    approved = _approves_current(session, row, request)
    check_transition(
        spec=spec,
        current=current,
        target=to,
        approved=approved,
        unknown_metrics=missing_metrics(session=session, keys=spec.metrics.all_keys()),
    )
    if to is Status.REVIEW:
        opened = ReviewRequestRow(
            experiment_id=row.id, requested_by=actor.username, reviewers=reviewers or []
        )
        if at is not None:
            opened.created_at = at
        session.add(opened)
    elif current is Status.REVIEW and request is not None:
        request.state = "withdrawn" if to is Status.DRAFT else request.state
        request.closed_at = moment
    if to is Status.RUNNING:
        _pin_metric_versions(session, row)
    if to is Status.RUNNING and row.start_at is None:
        row.start_at = moment
    if to is Status.STOPPED:
        row.end_at = moment
    _claim_status(session, row, current=current, to=to)
    _record(
        session,
        row,
        action="transition",
        actor=actor.username,
        at=at,
        reason=reason,
        from_status=current.value,
        to_status=to.value,
    )
    return row


def review(
    *,
    session: Session,
    key: str,
    reviewer: Principal,
    decision: ReviewDecision,
    comment: str = "",
    via: str | None = None,
    at: datetime | None = None,
) -> ReviewRow:
    """Approve, or request changes (which sends the experiment back to draft).

    An approval is bound to the configuration's current fingerprint. ``via`` says how the
    decision reached us when not with the reviewer's own credentials (the CLI's ``--as``);
    it is kept with the review and in the audit entry. ``at`` back-dates the review (seeded
    demo history)."""
    row = get_experiment(session=session, key=key)
    spec = spec_from_row(row)
    check_review(
        key=key,
        status=Status(row.status),
        spec=spec,
        creator=row.created_by,
        reviewer=reviewer,
        decision=decision,
        comment=comment,
        unknown_metrics=(
            missing_metrics(session=session, keys=spec.metrics.all_keys())
            if decision is ReviewDecision.APPROVE
            else ()
        ),
    )
    request = _open_request(session, row)
    if request is None:  # defensive: every entry into review opens a request
        request = ReviewRequestRow(experiment_id=row.id, requested_by=row.owner, reviewers=[])
        session.add(request)
        session.flush()
    entry = ReviewRow(
        request_id=request.id,
        reviewer=reviewer.username,
        decision=decision.value,
        comment=comment,
        fingerprint=fingerprint(session=session, row=row),
        via=via,
    )
    if at is not None:
        entry.created_at = at
    session.add(entry)
    from_status = row.status
    if decision is ReviewDecision.APPROVE:
        request.state = "approved"
    else:
        request.state = "changes_requested"
        request.closed_at = at or now()
        row.status = Status.DRAFT.value
    _record(
        session,
        row,
        action=f"review_{decision.value}",
        actor=reviewer.username,
        at=at,
        reason=comment,
        from_status=from_status,
        to_status=row.status,
        via=via,
    )
    return entry


def list_reviews(*, session: Session, key: str) -> list[dict[str, Any]]:
    row = get_experiment(session=session, key=key)
    requests = session.scalars(
        select(ReviewRequestRow)
        .where(ReviewRequestRow.experiment_id == row.id)
        .order_by(ReviewRequestRow.id.desc())
    )
    out = []
    for request in requests:
        reviews = session.scalars(
            select(ReviewRow).where(ReviewRow.request_id == request.id).order_by(ReviewRow.id)
        )
        out.append(
            {
                "id": request.id,
                "requested_by": request.requested_by,
                "reviewers": request.reviewers,
                "state": request.state,
                "created_at": _aware(request.created_at).isoformat(),  # type: ignore[union-attr]
                "reviews": [
                    {
                        "reviewer": r.reviewer,
                        "decision": r.decision,
                        "comment": r.comment,
                        "fingerprint": r.fingerprint,
                        "via": r.via,
                        "created_at": _aware(r.created_at).isoformat(),  # type: ignore[union-attr]
                    }
                    for r in reviews
                ],
            }
        )
    return out


def add_note(
    *, session: Session, key: str, author: Principal, body: str, at: datetime | None = None
) -> NoteRow:
    """Add a note (audited). ``at`` back-dates it (seeded demo history)."""
    if not body.strip():
        raise ValidationError(
            "a note needs text", details=[{"loc": ["body"], "msg": "must not be empty"}]
        )
    row = get_experiment(session=session, key=key)
    note = NoteRow(experiment_id=row.id, author=author.username, body=body)
    if at is not None:
        note.created_at = at
    session.add(note)
    session.flush()
    write_audit(
        session=session,
        entity="experiment",
        entity_key=key,
        action="note",
        actor=author.username,
        reason=body,
        snapshot=_snapshot(row),
        at=at,
    )
    return note


def list_notes(*, session: Session, key: str) -> list[NoteRow]:
    row = get_experiment(session=session, key=key)
    return list(
        session.scalars(
            select(NoteRow).where(NoteRow.experiment_id == row.id).order_by(NoteRow.id.desc())
        )
    )


def note_to_dict(note: NoteRow) -> dict[str, Any]:
    return {
        "id": note.id,
        "author": note.author,
        "body": note.body,
        "created_at": _aware(note.created_at).isoformat(),  # type: ignore[union-attr]
    }


def clone_experiment(
    *, session: Session, key: str, new_key: str, actor: Principal
) -> ExperimentRow:
    source = spec_from_row(get_experiment(session=session, key=key))
    try:
        spec = ExperimentSpec.model_validate(
            source.model_dump()
            | {
                "key": new_key,
                "seed": None,
                "start_at": None,
                "end_at": None,
                "owner": actor.username,
            }
        )
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from exc
    return create_experiment(session=session, spec=spec, actor=actor, cloned_from=key)


def ensure_transition_target(value: str) -> Status:
    try:
        return Status(value)
    except ValueError as exc:
        raise ValidationError(
            f"unknown status {value!r}",
            details=[{"loc": ["to"], "msg": f"one of {', '.join(s.value for s in Status)}"}],
        ) from exc


__all__ = [
    "TransitionError",
    "add_note",
    "clone_experiment",
    "create_experiment",
    "delete_experiment",
    "experiment_to_dict",
    "get_experiment",
    "list_experiments",
    "list_notes",
    "list_reviews",
    "review",
    "spec_from_row",
    "transition",
    "update_experiment",
]

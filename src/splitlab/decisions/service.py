"""The decision service: the latest snapshot + the resolved policy + the experiment's
context → a recommendation, stored (with an audit entry) when it changes.

``recommend_experiment`` caches by snapshot id and policy hash: an unchanged snapshot under an
unchanged policy returns the stored recommendation without re-running the engine.  A new
``RecommendationRow`` and an audit entry (entity ``experiment``, action ``recommendation``,
``reason`` ``"OLD → NEW: summary"``, ``changes`` with both codes) are written only when the
code, variant or segments change — webhooks and the scheduler tail that audit action.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pydantic

from splitlab.analysis.service import analyze
from splitlab.analysis.snapshot import Snapshot
from splitlab.decisions.engine import DecisionContext, recommend
from splitlab.decisions.policy import (
    POLICY_NAME_PATTERN,
    Policy,
    load_document,
    overlay_names,
    parse_policy,
    resolve,
)
from splitlab.decisions.recommendation import Recommendation
from splitlab.decisions.stages import NOT_STARTED_STATUSES
from splitlab.domain import Principal
from splitlab.errors import ConflictError, ValidationError
from splitlab.store.audit import write_audit
from splitlab.store.decisions import lock_experiment
from splitlab.store.experiments import get_experiment
from splitlab.store.policies import get_policies, get_policy, policy_to_dict, put_policy
from splitlab.store.recommendations import (
    latest_recommendation,
    latest_snapshot_texts,
    save_recommendation,
    update_recommendation,
)
from splitlab.store.recommendations import latest_recommendations as stored_latest

if TYPE_CHECKING:
    from splitlab.services import Services

ENGINE_ACTOR = "decision-engine"
"""Who recommendation audit entries are recorded as."""


def resolve_policy(*, services: Services, key: str) -> Policy:
    """The policy for experiment ``key``: built-in → stored ``default`` → ``team-{team}`` →
    ``experiment-{key}`` (NotFoundError for an unknown experiment)."""
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        names = overlay_names(team=row.team or None, key=key)
        stored = get_policies(session=session, names=names)
    return resolve([(name, stored[name]) for name in names if name in stored])


def resolve_named_policy(*, services: Services, name: str) -> Policy:
    """The policy named ``name`` as it resolves on its own: built-in → stored ``default`` →
    ``name`` (for ``team-…`` / ``experiment-…``; ``team-…`` before ``experiment-…`` is not
    applied, since a bare name has no team)."""
    names = ["default"] if name == "default" else ["default", name]
    with services.sessions() as session:
        stored = get_policies(session=session, names=names)
    overlays = [(n, stored[n]) for n in names if n in stored]
    policy = resolve(overlays)
    return policy.model_copy(update={"name": name})


def policy_view(*, services: Services, name: str) -> dict[str, Any]:
    """Stored policy ``name`` (``document``, ``version``, who and when; ``stored`` false when
    never stored) and what it resolves to (``resolved``); ValidationError for a bad name."""
    check_policy_name(name)
    resolved = resolve_named_policy(services=services, name=name)
    with services.sessions() as session:
        row = get_policy(session=session, name=name)
        stored = policy_to_dict(row) if row is not None else None
    base: dict[str, Any] = {
        "name": name,
        "stored": stored is not None,
        "version": None,
        "updated_by": None,
        "updated_at": None,
        "document": None,
    }
    return base | (stored or {}) | {"resolved": resolved.document()}


def store_policy(
    *, services: Services, name: str, document: str | bytes | dict[str, Any], actor: Principal
) -> dict[str, Any]:
    """Validate (422 naming the field path) and store policy ``name`` — a partial YAML/JSON
    document over the built-in default; ``experiment-{key}`` needs the experiment to exist.
    Audited (entity ``policy``). Returns :func:`policy_view`. Roles are the caller's check."""
    check_policy_name(name)
    data = load_document(document)
    parse_policy(data, name=name)
    with services.sessions.begin() as session:
        if name.startswith("experiment-"):
            get_experiment(session=session, key=name.removeprefix("experiment-"))
        put_policy(session=session, name=name, document=data, actor=actor)
    return policy_view(services=services, name=name)


def check_policy_name(name: str) -> None:
    """ValidationError unless ``name`` is ``default``, ``team-{team}`` or ``experiment-{key}``."""
    if not re.fullmatch(POLICY_NAME_PATTERN, name):
        raise ValidationError(
            f"bad policy name {name[:120]!r}: use default, team-{{team}} or experiment-{{key}}",
            details=[{"loc": ["name"], "msg": "default, team-{team} or experiment-{key}"}],
        )


def _started(*, services: Services, key: str) -> None:
    """NotFoundError for an unknown key; ConflictError before the experiment has started."""
    with services.sessions() as session:
        status = get_experiment(session=session, key=key).status
    if status in NOT_STARTED_STATUSES:
        raise ConflictError(
            f"experiment {key!r} is {status}: it has not started, so there is nothing to "
            "decide yet",
            details={"status": status},
        )


def _context(*, services: Services, key: str) -> DecisionContext:
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        start = row.start_at
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        return DecisionContext(
            status=row.status,
            now=datetime.now(UTC),
            start_at=start,
            experiment_type=row.type,
            team=row.team or None,
        )


def _snapshot(*, services: Services, key: str, refresh: bool) -> Snapshot:
    """The latest stored snapshot (analysed first when there is none, or on ``refresh``),
    read without its daily series, which the engine does not use."""
    if refresh:
        return analyze(services=services, key=key)
    with services.sessions() as session:
        get_experiment(session=session, key=key)  # an unknown key is a 404
        found = latest_snapshot_texts(session=session, keys=[key]).get(key)
    stored = stored_snapshot(*found) if found is not None else None
    return stored if stored is not None else analyze(services=services, key=key)


def stored_snapshot(snapshot_id: int, text: str) -> Snapshot | None:
    """A stored snapshot's JSON text (``store.recommendations.latest_snapshot_texts``) as
    served, or None when an analysis whose shape this version does not know wrote it."""
    try:
        snapshot = Snapshot.model_validate_json(text)
    except pydantic.ValidationError:
        return None
    return snapshot.served(snapshot_id=snapshot_id, cached=True)


def _identity(rec: Recommendation) -> tuple[str, str | None, list[tuple[str, str]]]:
    return (
        rec.code.value,
        rec.variant,
        sorted((s.get("name", ""), s.get("value", "")) for s in rec.segments),
    )


CONTEXT_KEY = "context"
"""Stored beside the recommendation's JSON in ``payload``: the status it was made in (with the
snapshot id and the policy hash, the cache key — stopping an experiment changes the advice)."""


def _read(payload: dict[str, object]) -> Recommendation | None:
    data = {k: v for k, v in payload.items() if k != CONTEXT_KEY}
    try:
        return Recommendation.model_validate(data)
    except pydantic.ValidationError:
        return None


def _payload(recommendation: Recommendation, context: DecisionContext) -> dict[str, object]:
    return recommendation.to_json() | {CONTEXT_KEY: {"status": context.status}}


def recommend_experiment(*, services: Services, key: str, refresh: bool = False) -> Recommendation:
    """The recommendation for experiment ``key`` from its latest snapshot (analysed first if
    it never was; ``refresh=True`` analyses new data first and re-runs the engine).

    Stores a new recommendation row and an audit entry only when the code, variant or
    segments differ from the stored one; otherwise refreshes the stored row's numbers.
    ConflictError (409) for an experiment that has not started (draft, review, scheduled):
    there is nothing to decide on, and nothing is analysed or stored."""
    _started(services=services, key=key)
    snapshot = _snapshot(services=services, key=key, refresh=refresh)
    policy = resolve_policy(services=services, key=key)
    policy_hash = policy.policy_hash()
    context = _context(services=services, key=key)
    with services.sessions() as session:
        row = latest_recommendation(session=session, key=key)
        previous = _read(row.payload) if row is not None else None
    if (
        not refresh
        and previous is not None
        and row is not None
        and row.snapshot_id == snapshot.snapshot_id
        and row.policy_hash == policy_hash
        and (row.payload.get(CONTEXT_KEY) or {}).get("status") == context.status
    ):
        return previous
    recommendation = recommend(snapshot, policy=policy, context=context)
    with services.sessions.begin() as session:
        # simultaneous callers (page views, the scheduler) take turns here and each compares
        # with what the one before stored: a change is recorded and audited (and its webhook
        # sent) once, not once per caller that read the old row
        lock_experiment(session=session, key=key)
        row = latest_recommendation(session=session, key=key)
        previous = _read(row.payload) if row is not None else None
        changed = previous is None or _identity(previous) != _identity(recommendation)
        if not changed and row is not None:
            update_recommendation(
                session=session,
                row_id=row.id,
                snapshot_id=snapshot.snapshot_id,
                policy_hash=policy_hash,
                payload=_payload(recommendation, context),
            )
            return recommendation
        save_recommendation(
            session=session,
            key=key,
            snapshot_id=snapshot.snapshot_id,
            policy_hash=policy_hash,
            code=recommendation.code.value,
            payload=_payload(recommendation, context),
        )
        old = previous.code.value if previous is not None else "none"
        write_audit(
            session=session,
            entity="experiment",
            entity_key=key,
            action="recommendation",
            actor=ENGINE_ACTOR,
            reason=f"{old} → {recommendation.code.value}: {recommendation.summary}",
            changes={
                "code": {
                    "from": None if previous is None else old,
                    "to": recommendation.code.value,
                },
                "variant": {
                    "from": previous.variant if previous else None,
                    "to": recommendation.variant,
                },
                "segments": {
                    "from": previous.segments if previous else [],
                    "to": recommendation.segments,
                },
                "label": recommendation.label,
                "snapshot_id": snapshot.snapshot_id,
                "policy": recommendation.policy,
                "policy_hash": policy_hash,
            },
        )
    return recommendation


def latest_recommendations(
    *, services: Services, keys: Iterable[str] | None = None
) -> dict[str, Recommendation]:
    """The stored current recommendation per experiment (of ``keys``, or all) — one query, no
    analysis and no engine run (for the fleet view). Experiments never recommended are absent."""
    with services.sessions() as session:
        rows = stored_latest(session=session, keys=keys)
        out = {}
        for key, row in rows.items():
            rec = _read(row.payload)
            if rec is not None:
                out[key] = rec
    return out

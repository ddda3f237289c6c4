"""Experiments: CRUD, lifecycle transitions, audit, notes, clone and reviews."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import ValidationError as PydanticValidationError

from splitlab.api.deps import Editor, Reader, ServicesDep
from splitlab.api.schemas import (
    CloneIn,
    EditIn,
    ExperimentList,
    ExperimentOut,
    NoteIn,
    ReviewIn,
    TransitionIn,
)
from splitlab.domain import ExperimentPatch, ExperimentSpec
from splitlab.domain.limits import MAX_QUERY_TEXT
from splitlab.errors import from_pydantic
from splitlab.store import experiments as repo
from splitlab.store.audit import audit_to_dict, list_audit

router = APIRouter(prefix="/api/experiments", tags=["experiments"])


@router.post("", status_code=201, response_model=ExperimentOut)
def create(spec: ExperimentSpec, services: ServicesDep, actor: Editor) -> dict[str, Any]:
    with services.sessions.begin() as session:
        row = repo.create_experiment(session=session, spec=spec, actor=actor)
        return repo.experiment_to_dict(row)


@router.get("", response_model=ExperimentList)
def list_(
    services: ServicesDep,
    _: Reader,
    status: str | None = Query(default=None, max_length=MAX_QUERY_TEXT),
    team: str | None = Query(default=None, max_length=MAX_QUERY_TEXT),
    type: str | None = Query(default=None, max_length=MAX_QUERY_TEXT),
    q: str | None = Query(
        default=None,
        max_length=MAX_QUERY_TEXT,
        description="search in key, name and hypothesis (literally: % and _ are no wildcards)",
    ),
) -> dict[str, Any]:
    with services.sessions() as session:
        rows = repo.list_experiments(session=session, status=status, team=team, type=type, q=q)
        items = [repo.experiment_to_dict(r) for r in rows]
    return {"experiments": items, "count": len(items)}


@router.get("/{key}", response_model=ExperimentOut)
def read(key: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    with services.sessions() as session:
        return repo.experiment_to_dict(repo.get_experiment(session=session, key=key))


@router.patch("/{key}", response_model=ExperimentOut)
def edit(key: str, body: EditIn, services: ServicesDep, actor: Editor) -> dict[str, Any]:
    fields = body.model_dump(exclude={"reason"}, exclude_unset=True)
    try:
        patch = ExperimentPatch.model_validate(fields)
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from exc
    with services.sessions.begin() as session:
        row = repo.update_experiment(
            session=session, key=key, patch=patch, actor=actor, reason=body.reason
        )
        return repo.experiment_to_dict(row)


@router.delete("/{key}", status_code=204)
def delete(key: str, services: ServicesDep, actor: Editor) -> Response:
    with services.sessions.begin() as session:
        repo.delete_experiment(session=session, key=key, actor=actor)
    return Response(status_code=204)


@router.post("/{key}/transitions", response_model=ExperimentOut)
def transition(
    key: str, body: TransitionIn, services: ServicesDep, actor: Editor
) -> dict[str, Any]:
    target = repo.ensure_transition_target(body.to)
    with services.sessions.begin() as session:
        row = repo.transition(
            session=session,
            key=key,
            to=target,
            actor=actor,
            reason=body.reason,
            reviewers=body.reviewers,
        )
        return repo.experiment_to_dict(row)


@router.get("/{key}/audit")
def audit(key: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    with services.sessions() as session:
        entries = list_audit(session=session, entity="experiment", entity_key=key)
        if not entries:
            repo.get_experiment(session=session, key=key)  # 404 for an unknown key
        return {"entries": [audit_to_dict(e) for e in entries]}


@router.post("/{key}/notes", status_code=201)
def add_note(key: str, body: NoteIn, services: ServicesDep, actor: Editor) -> dict[str, Any]:
    with services.sessions.begin() as session:
        return repo.note_to_dict(
            repo.add_note(session=session, key=key, author=actor, body=body.body)
        )


@router.get("/{key}/notes")
def notes(key: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    with services.sessions() as session:
        return {"notes": [repo.note_to_dict(n) for n in repo.list_notes(session=session, key=key)]}


@router.post("/{key}/clone", status_code=201, response_model=ExperimentOut)
def clone(key: str, body: CloneIn, services: ServicesDep, actor: Editor) -> dict[str, Any]:
    with services.sessions.begin() as session:
        row = repo.clone_experiment(session=session, key=key, new_key=body.key, actor=actor)
        return repo.experiment_to_dict(row)


@router.post("/{key}/reviews", status_code=201)
def review(key: str, body: ReviewIn, services: ServicesDep, actor: Editor) -> dict[str, Any]:
    with services.sessions.begin() as session:
        repo.review(
            session=session, key=key, reviewer=actor, decision=body.decision, comment=body.comment
        )
        return {
            "experiment": repo.experiment_to_dict(repo.get_experiment(session=session, key=key)),
            "reviews": repo.list_reviews(session=session, key=key),
        }


@router.get("/{key}/reviews")
def reviews(key: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    with services.sessions() as session:
        return {"requests": repo.list_reviews(session=session, key=key)}

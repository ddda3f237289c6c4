"""User and API-key management for admins; every change is audited.

A change applies to the user's next request on this server (its caches are dropped on
commit) and within ``SPLITLAB_INGEST_CACHE_SECONDS`` / ``SPLITLAB_SESSION_CACHE_SECONDS``
on other server processes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from splitlab.api.deps import Admin, ServicesDep
from splitlab.domain import Role
from splitlab.errors import NotFoundError, ValidationError
from splitlab.store import users as repo
from splitlab.store.audit import audit_to_dict, list_audit

router = APIRouter(tags=["users"])


class UserPatch(BaseModel):
    """A change of one user: a new role, disabling (``active: false``) or enabling."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = Field(default=None, description="viewer, editor, reviewer or admin")
    active: bool | None = Field(
        default=None,
        description="false ends the user's sessions and refuses their API keys; true undoes it",
    )
    reason: str = Field(default="", max_length=2000, description="recorded in the audit log")


def _user_out(session: Any, row: Any) -> dict[str, Any]:
    counts = repo.active_key_counts(session=session)
    return repo.user_to_dict(row, active_keys=counts.get(row.id, 0))


@router.get("/api/users")
def list_users(services: ServicesDep, _: Admin) -> dict[str, Any]:
    with services.sessions() as session:
        counts = repo.active_key_counts(session=session)
        items = [
            repo.user_to_dict(row, active_keys=counts.get(row.id, 0))
            for row in repo.list_users(session=session)
        ]
    return {"users": items, "count": len(items)}


@router.get("/api/users/{username}")
def read_user(username: str, services: ServicesDep, _: Admin) -> dict[str, Any]:
    with services.sessions() as session:
        row = repo.get_user(session=session, username=username)
        keys = repo.list_api_keys(session=session, username=username)
        return _user_out(session, row) | {"keys": [repo.api_key_to_dict(k) for k in keys]}


@router.patch("/api/users/{username}")
def update_user(
    username: str, body: UserPatch, services: ServicesDep, actor: Admin
) -> dict[str, Any]:
    """Set the role and/or the active flag; a change that would leave no active admin is 409."""
    if body.role is None and body.active is None:
        raise ValidationError(
            "nothing to change: send role and/or active",
            details=[{"loc": ["role"], "msg": "role or active is required"}],
        )
    with services.sessions.begin() as session:
        if body.role is not None:
            repo.set_role(
                session=session,
                username=username,
                role=body.role,
                actor=actor.username,
                reason=body.reason,
            )
        if body.active is not None:
            repo.set_active(
                session=session,
                username=username,
                active=body.active,
                actor=actor.username,
                reason=body.reason,
            )
        return _user_out(session, repo.get_user(session=session, username=username))


@router.delete("/api/users/{username}", status_code=204)
def delete_user(username: str, services: ServicesDep, actor: Admin, reason: str = "") -> Response:
    """Delete a user with their sessions and API keys (the audit log keeps the record)."""
    with services.sessions.begin() as session:
        repo.delete_user(session=session, username=username, actor=actor.username, reason=reason)
    return Response(status_code=204)


@router.get("/api/users/{username}/audit")
def user_audit(username: str, services: ServicesDep, _: Admin) -> dict[str, Any]:
    """The user's audit log (also after the user was deleted), newest first."""
    with services.sessions() as session:
        entries = list_audit(session=session, entity="user", entity_key=username)
        if not entries:
            repo.get_user(session=session, username=username)  # 404 for an unknown user
        return {"entries": [audit_to_dict(e) for e in entries]}


@router.get("/api/keys")
def list_keys(services: ServicesDep, _: Admin, user: str | None = None) -> dict[str, Any]:
    """Every API key (never the secret); ``id`` is what ``DELETE /api/keys/{id}`` takes."""
    with services.sessions() as session:
        items = [
            repo.api_key_to_dict(row) for row in repo.list_api_keys(session=session, username=user)
        ]
    return {"keys": items, "count": len(items)}


@router.delete("/api/keys/{key_id}", status_code=204)
def revoke_key(key_id: str, services: ServicesDep, actor: Admin, reason: str = "") -> Response:
    """Revoke a key (idempotent); requests with it are refused from the next one on."""
    with services.sessions.begin() as session:
        repo.revoke_api_key(session=session, prefix=key_id, actor=actor.username, reason=reason)
    return Response(status_code=204)


@router.get("/api/keys/{key_id}/audit")
def key_audit(key_id: str, services: ServicesDep, _: Admin) -> dict[str, Any]:
    with services.sessions() as session:
        entries = list_audit(session=session, entity="api_key", entity_key=key_id)
        if not entries:
            raise NotFoundError(f"no API key {key_id!r}")
        return {"entries": [audit_to_dict(e) for e in entries]}

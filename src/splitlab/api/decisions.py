"""Decisions: an experiment's recommendation, and the decision policies.

``GET /api/experiments/{key}/recommendation`` runs the policy engine on the latest snapshot
(cached by snapshot and policy); ``GET/PUT /api/policies/{name}`` read and store the policies
``default``, ``team-{team}`` and ``experiment-{key}`` (YAML or JSON bodies, partial documents
over the built-in default).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from splitlab.api.deps import Editor, Reader, ServicesDep
from splitlab.decisions.policy import MAX_POLICY_CHARS, POLICY_NAME_PATTERN, Policy
from splitlab.decisions.recommendation import Recommendation
from splitlab.decisions.service import policy_view, recommend_experiment, store_policy
from splitlab.errors import PayloadTooLargeError, PermissionDeniedError, ValidationError

router = APIRouter(tags=["decisions"])

PolicyName = Annotated[
    str,
    Path(
        pattern=POLICY_NAME_PATTERN,
        max_length=120,
        description="default, team-{team} or experiment-{key}",
    ),
]


class PolicyOut(BaseModel):
    """A policy as stored (the partial document) and as it resolves."""

    name: str
    """``default``, ``team-{team}`` or ``experiment-{key}``."""
    stored: bool
    """False when nothing is stored under this name (``resolved`` is then the defaults)."""
    version: int | None = None
    """The stored version (1, 2, …), null when not stored."""
    updated_by: str | None = None
    updated_at: datetime | None = None
    document: dict[str, Any] | None = None
    """The stored partial document, null when not stored."""
    resolved: Policy = Field(description="built-in → stored default → this document")


NOT_STARTED: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "The experiment has not started (draft, review or scheduled): nothing to "
        "decide yet",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
}


@router.get("/api/experiments/{key}/recommendation", responses=NOT_STARTED)
async def recommendation(
    key: str,
    services: ServicesDep,
    _: Reader,
    refresh: bool = Query(
        default=False, description="analyse new data first and re-run the policy engine"
    ),
) -> Recommendation:
    """What to do with the experiment now: the code (``SHIP_GLOBAL``, ``HOLD_INCONCLUSIVE``,
    …), the dashboard label, a summary, every stage's reasons with their evidence, and the
    expected value per day when the policy gives values. Analyses the experiment first if it
    never was."""
    return await run_in_threadpool(
        recommend_experiment, services=services, key=key, refresh=refresh
    )


@router.get("/api/policies/{name}")
def read_policy(name: PolicyName, services: ServicesDep, _: Reader) -> PolicyOut:
    """A stored policy and what it resolves to (the built-in default when ``default`` was
    never stored)."""
    return PolicyOut.model_validate(policy_view(services=services, name=name))


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string", "maxLength": MAX_POLICY_CHARS}},
        },
    }
}


@router.put("/api/policies/{name}", openapi_extra=_BODY_DOC)
async def write_policy(
    name: PolicyName, request: Request, services: ServicesDep, principal: Editor
) -> PolicyOut:
    """Store a policy (a partial YAML or JSON document over the built-in default; unknown keys
    are refused with 422 naming the field path). ``default`` and ``team-…`` policies need
    the admin role; ``experiment-{key}`` needs an editor and an existing experiment."""
    if not name.startswith("experiment-") and not principal.is_admin():
        raise PermissionDeniedError(
            f"policy {name!r} applies to many experiments: it needs the admin role",
            details={"role": principal.role},
        )
    body = await request.body()
    if len(body) > MAX_POLICY_CHARS * 4:
        raise PayloadTooLargeError(f"policy document over {MAX_POLICY_CHARS} characters")
    if not body.strip():  # a lost body is not "reset to the defaults": that is an explicit {}
        raise ValidationError(
            "invalid policy: (document): the body is empty; send {} to store an empty overlay",
            details=[{"loc": ["(document)"], "msg": "empty body"}],
        )

    def store() -> PolicyOut:
        view = store_policy(services=services, name=name, document=body, actor=principal)
        return PolicyOut.model_validate(view)

    return await run_in_threadpool(store)

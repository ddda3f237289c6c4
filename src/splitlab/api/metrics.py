"""Metric definitions, versioned: a change of a definition is its next version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from splitlab.api.deps import Editor, Reader, ServicesDep
from splitlab.api.schemas import MetricOut
from splitlab.domain import MetricDefinition
from splitlab.domain.limits import MAX_INT32
from splitlab.store import metrics as repo

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


@router.post(
    "",
    status_code=201,
    response_model=MetricOut,
    responses={200: {"model": MetricOut, "description": "A new version of an existing metric"}},
)
def upsert(
    definition: MetricDefinition, services: ServicesDep, actor: Editor, response: Response
) -> dict[str, Any]:
    """Create a metric definition, or make this the next version of the one with the same key
    (200). Experiments that already started keep analysing the version they started with."""
    with services.sessions.begin() as session:
        row, created = repo.upsert_metric(session=session, definition=definition, actor=actor)
        if not created:
            response.status_code = 200
        return repo.metric_to_dict(row)


@router.get("")
def list_(services: ServicesDep, _: Reader) -> dict[str, Any]:
    with services.sessions() as session:
        items = [repo.metric_to_dict(r) for r in repo.list_metrics(session=session)]
    return {"metrics": items, "count": len(items)}


@router.get("/{key}", response_model=MetricOut)
def read(
    key: str,
    services: ServicesDep,
    _: Reader,
    version: int | None = Query(default=None, ge=1, le=MAX_INT32, description="a past version"),
) -> dict[str, Any]:
    with services.sessions() as session:
        row = repo.get_metric(session=session, key=key)
        if version is None:
            return repo.metric_to_dict(row)
        definition = repo.get_metric_version(session=session, key=key, version=version)
        return definition.model_dump(mode="json") | {"version": version}


@router.get("/{key}/versions")
def versions(key: str, services: ServicesDep, _: Reader) -> dict[str, Any]:
    """Every version of the definition, newest first."""
    with services.sessions() as session:
        return {"versions": repo.list_metric_versions(session=session, key=key)}

"""Metric definitions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from splitlab.api.deps import Editor, Reader, ServicesDep
from splitlab.domain import MetricDefinition
from splitlab.store import metrics as repo

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


@router.post("", status_code=201, response_model=MetricDefinition)
def upsert(
    definition: MetricDefinition, services: ServicesDep, actor: Editor, response: Response
) -> MetricDefinition:
    """Create a metric definition, or replace the one with the same key (200)."""
    with services.sessions.begin() as session:
        row, created = repo.upsert_metric(session=session, definition=definition, actor=actor)
        if not created:
            response.status_code = 200
        return repo.metric_from_row(row)


@router.get("")
def list_(services: ServicesDep, _: Reader) -> dict[str, Any]:
    with services.sessions() as session:
        items = [
            repo.metric_from_row(r).model_dump(mode="json")
            for r in repo.list_metrics(session=session)
        ]
    return {"metrics": items, "count": len(items)}


@router.get("/{key}", response_model=MetricDefinition)
def read(key: str, services: ServicesDep, _: Reader) -> MetricDefinition:
    with services.sessions() as session:
        return repo.metric_from_row(repo.get_metric(session=session, key=key))

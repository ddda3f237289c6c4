"""Analysis: run (or reuse) an experiment's analysis, and read its latest snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from splitlab.analysis import analyze, latest, select_view
from splitlab.analysis.snapshot import Snapshot
from splitlab.api.deps import Editor, Reader, ServicesDep

router = APIRouter(prefix="/api/experiments", tags=["analysis"])


@router.post("/{key}/analyze")
async def run(
    key: str,
    services: ServicesDep,
    _: Editor,
    refresh: bool = Query(default=False, description="recompute even if data and settings match"),
) -> Snapshot:
    """Analyse now; returns the stored snapshot when data and settings are unchanged."""
    return await run_in_threadpool(analyze, services=services, key=key, refresh=refresh)


@router.get("/{key}/results")
def results(
    key: str,
    services: ServicesDep,
    _: Reader,
    segment: str | None = Query(
        default=None, description="a segment name: its per-value results instead of overall"
    ),
    daily: bool = Query(default=False, description="include the cumulative daily series"),
) -> Snapshot:
    """The latest snapshot (404 until the experiment has been analysed once).

    For a CUPED metric, ``control_mean``/``treatment_mean`` (with ``control_n``/``treatment_n``)
    are the raw per-arm means; ``control_mean_adjusted``/``treatment_mean_adjusted`` are the
    pre-period-adjusted means that the effects, CIs and p-values compare.
    """
    return select_view(latest(services=services, key=key), segment=segment, daily=daily)

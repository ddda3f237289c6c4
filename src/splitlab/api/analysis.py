"""Analysis: run (or reuse) an experiment's analysis, and read its latest snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from splitlab.analysis import analyze, latest, select_view
from splitlab.analysis.breakdown import breakdown as adhoc_breakdown
from splitlab.analysis.breakdown import parse_dimensions
from splitlab.analysis.novelty import exposure_day_view
from splitlab.analysis.snapshot import Snapshot
from splitlab.api.deps import Editor, Reader, ServicesDep
from splitlab.domain.limits import MAX_QUERY_TEXT

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
        default=None,
        max_length=MAX_QUERY_TEXT,
        description="a segment name: its per-value results instead of overall (404 when the "
        "snapshot has none for it)",
    ),
    daily: bool = Query(
        default=False,
        description="include the cumulative daily series and the days-since-exposure view",
    ),
    breakdown: str | None = Query(
        default=None,
        max_length=250,
        description="one or two exposure attributes, comma-separated (country,device): an "
        "exploratory breakdown computed now from the warehouse (cached while the data is "
        "unchanged, never stored), with every cell's rows unless segment names one",
    ),
) -> Snapshot:
    """The latest snapshot (404 until the experiment has been analysed once); with
    ``breakdown``, an ad-hoc exploratory breakdown instead (422 for a bad attribute list).

    For a CUPED metric, ``control_mean``/``treatment_mean`` (with ``control_n``/``treatment_n``)
    are the raw per-arm means; ``control_mean_adjusted``/``treatment_mean_adjusted`` are the
    pre-period-adjusted means that the effects, CIs and p-values compare.
    """
    if breakdown is not None:
        dimensions = parse_dimensions(breakdown)
        adhoc = adhoc_breakdown(services=services, key=key, dimensions=dimensions)
        if segment is None:
            return adhoc
        return select_view(adhoc, segment=segment, daily=False)
    snapshot = latest(services=services, key=key)
    if daily:  # the days-since-exposure view beside the daily series, computed on demand
        snapshot = exposure_day_view(services=services, snapshot=snapshot)
    return select_view(snapshot, segment=segment, daily=daily)

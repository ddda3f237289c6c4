"""``analyze``: experiment + warehouse → a stored snapshot, served from cache when neither the
data (watermark) nor the settings (hash) changed since the last analysis."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pydantic

from splitlab.analysis.aggregates import fetch_aggregates
from splitlab.analysis.compute import compute_results, heterogeneity, omnibus
from splitlab.analysis.health import health_checks
from splitlab.analysis.plan import AnalysisPlan, build_plan
from splitlab.analysis.population import assigned_population
from splitlab.analysis.snapshot import DataWatermark, Snapshot, VariantUnits
from splitlab.domain import MetricDefinition
from splitlab.domain.lifecycle import LIVE
from splitlab.errors import NotFoundError
from splitlab.store.experiments import (
    experiment_keys,
    get_experiment,
    metric_definitions,
    spec_from_row,
)
from splitlab.store.snapshots import find_snapshot, latest_snapshot, save_snapshot

if TYPE_CHECKING:
    from splitlab.services import Services
    from splitlab.store.tables import SnapshotRow
    from splitlab.warehouse import Warehouse, Watermark


def load_plan(*, services: Services, key: str) -> tuple[AnalysisPlan, str]:
    """The analysis plan of experiment ``key`` and its lifecycle status. A started experiment
    is analysed with the metric definition versions it pinned when it started."""
    top_n = services.settings.analysis_top_segments
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        spec = spec_from_row(row)
        definitions: dict[str, MetricDefinition] = metric_definitions(session=session, row=row)
        return build_plan(spec, definitions, top_n=top_n), row.status


def _data_watermark(watermark: Watermark) -> DataWatermark:
    return DataWatermark(
        key=watermark.cache_key(),
        exposures=watermark.exposures,
        events=watermark.events,
        conflicts=watermark.conflicts,
        last_ingested_at=watermark.last_ingested_at,
    )


def run_analysis(*, warehouse: Warehouse, plan: AnalysisPlan, watermark: Watermark) -> Snapshot:
    """Query the warehouse and compute results and health checks (no caching, no storing)."""
    started = time.perf_counter()
    con = warehouse.ibis_connection()  # its session zone is UTC, so days are UTC days
    as_of = watermark.last_ingested_at or datetime.now(UTC)
    tables = {
        "exposures": warehouse.exposures_table(),
        "events": warehouse.events_table(),
        "conflicts": warehouse.conflicts_table(),
        "unit_values": warehouse.unit_values_table(),
        "unit_attributes": warehouse.unit_attributes_table(),
    }
    aggregates = fetch_aggregates(con, plan=plan, as_of=as_of, **tables)
    results, daily, families = compute_results(plan, aggregates)
    health = health_checks(plan, aggregates, results, families)
    n = aggregates.n[0]
    units = [
        VariantUnits(
            variant=variant, weight=weight, n=int(n[v]), excluded=int(aggregates.excluded[v])
        )
        for v, (variant, weight) in enumerate(zip(plan.variants, plan.weights, strict=True))
    ]
    omnibus_tests = omnibus(plan, aggregates)
    spread = heterogeneity(plan, aggregates, families)
    snapshot = Snapshot(
        experiment=plan.key,
        engine=plan.engine,
        settings_hash=plan.settings_hash(),
        settings=plan.settings(),
        watermark=_data_watermark(watermark),
        as_of=as_of,
        created_at=datetime.now(UTC),
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        timings_ms={k: round(v, 3) for k, v in aggregates.timings_ms.items()},
        units=tuple(units),
        days=tuple(c.day for c in aggregates.cells if c.kind == "day" and c.day),
        results=tuple(results),
        daily=tuple(daily),
        omnibus=tuple(omnibus_tests),
        health=tuple(health),
    )
    update: dict[str, Any] = {}
    if plan.trigger is not None:  # the assigned population beside the triggered one
        update["population"] = assigned_population(
            con=con, tables=tables, plan=plan, as_of=as_of, triggered=aggregates
        )
    # absent unless there are segments (the JSON form leaves unset optional fields out)
    if spread:
        update["heterogeneity"] = tuple(spread)
    return snapshot.model_copy(update=update) if update else snapshot


def _stored(row: SnapshotRow) -> Snapshot | None:
    """A stored snapshot as served, or None when its payload no longer reads (written by an
    analysis whose shape this version does not know)."""
    try:
        snapshot = Snapshot.from_json(row.payload)
    except pydantic.ValidationError:
        return None
    return snapshot.served(snapshot_id=row.id, cached=True)


def analyze(*, services: Services, key: str, refresh: bool = False) -> Snapshot:
    """The snapshot of experiment ``key``: the stored one when data and settings are unchanged
    (only the cheap watermark query runs), else a new analysis, stored and returned.

    ``refresh=True`` always recomputes, as does a stored snapshot that no longer reads.  The
    result carries ``snapshot_id`` and ``cached``.
    """
    plan, _status = load_plan(services=services, key=key)
    warehouse = services.warehouse
    watermark = warehouse.watermark()
    settings_hash = plan.settings_hash()
    if not refresh:
        with services.sessions() as session:
            row = find_snapshot(
                session=session,
                key=key,
                settings_hash=settings_hash,
                watermark=watermark.cache_key(),
            )
            stored = _stored(row) if row is not None else None
            if stored is not None:
                return stored
    snapshot = run_analysis(warehouse=warehouse, plan=plan, watermark=watermark)
    with services.sessions.begin() as session:
        row = save_snapshot(
            session=session,
            key=key,
            settings_hash=settings_hash,
            watermark=watermark.cache_key(),
            payload=snapshot.to_json(),
            duration_ms=snapshot.duration_ms,
        )
        snapshot_id = row.id
    return snapshot.served(snapshot_id=snapshot_id, cached=False)


def latest(*, services: Services, key: str) -> Snapshot:
    """The newest stored snapshot of ``key`` (NotFoundError if it was never analysed, or
    only by a version whose snapshots this one cannot read)."""
    with services.sessions() as session:
        get_experiment(session=session, key=key)
        row = latest_snapshot(session=session, key=key)
        stored = _stored(row) if row is not None else None
        if stored is None:
            state = (
                "has not been analysed yet"
                if row is None
                else "has only a snapshot from an older version, which cannot be read"
            )
            raise NotFoundError(
                f"experiment {key!r} {state}: "
                f"POST /api/experiments/{key}/analyze or run `splitlab analyze {key}`",
                details={"key": key},
            )
        return stored


def select_view(snapshot: Snapshot, *, segment: str | None = None, daily: bool = False) -> Snapshot:
    """The results view of a snapshot: overall results (or one segment's), ``daily`` only
    when asked for (:meth:`Snapshot.view`); a segment without results is not found (as on
    the experiment page), not an empty list that reads like no effect anywhere."""
    view = snapshot.view(segment=segment, daily=daily)
    if segment is not None and not view.results:
        names = sorted({r.segment.name for r in snapshot.results if r.segment is not None})
        raise NotFoundError(
            f"experiment {snapshot.experiment!r} has no results for segment {segment!r}"
            + (f" (segments with results: {', '.join(names)})" if names else ""),
            details={"segment": segment, "segments": names},
        )
    return view


def refresh_running(*, services: Services) -> int:
    """Analyse every live experiment (cache hits are cheap); returns how many were new."""
    with services.sessions() as session:
        keys = experiment_keys(session=session, statuses=LIVE)
    fresh = 0
    for key in keys:
        if not analyze(services=services, key=key).cached:
            fresh += 1
    return fresh

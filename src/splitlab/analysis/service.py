"""``analyze``: experiment + warehouse → a stored snapshot, served from cache when neither the
data (watermark) nor the settings (hash) changed since the last analysis."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from splitlab.analysis.aggregates import fetch_aggregates
from splitlab.analysis.compute import compute_results, omnibus
from splitlab.analysis.health import health_checks
from splitlab.analysis.plan import AnalysisPlan, build_plan
from splitlab.domain import MetricDefinition, Status
from splitlab.errors import NotFoundError
from splitlab.store.experiments import get_experiment, metric_definitions, spec_from_row
from splitlab.store.snapshots import find_snapshot, latest_snapshot, save_snapshot

if TYPE_CHECKING:
    from splitlab.services import Services
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


def _watermark_json(watermark: Watermark) -> dict[str, Any]:
    last = watermark.last_ingested_at
    return {
        "key": watermark.cache_key(),
        "exposures": watermark.exposures,
        "events": watermark.events,
        "conflicts": watermark.conflicts,
        "last_ingested_at": last.isoformat() if last else None,
    }


def run_analysis(
    *, warehouse: Warehouse, plan: AnalysisPlan, watermark: Watermark
) -> dict[str, Any]:
    """Query the warehouse and compute results and health checks (no caching, no storing)."""
    started = time.perf_counter()
    con = warehouse.ibis_connection()
    if warehouse.dialect == "duckdb":
        # Day buckets cast TIMESTAMPTZ → TIMESTAMP; pin the session zone so days are UTC days.
        con.raw_sql("SET TimeZone = 'UTC'")
    as_of = watermark.last_ingested_at or datetime.now(UTC)
    aggregates = fetch_aggregates(
        con,
        exposures=warehouse.exposures_table(),
        events=warehouse.events_table(),
        conflicts=warehouse.conflicts_table(),
        plan=plan,
        as_of=as_of,
    )
    results, daily, families = compute_results(plan, aggregates)
    health = health_checks(plan, aggregates, results, families)
    n = aggregates.n[0]
    units = [
        {
            "variant": variant,
            "weight": weight,
            "n": int(n[v]),
            "excluded": int(aggregates.excluded[v]),
        }
        for v, (variant, weight) in enumerate(zip(plan.variants, plan.weights, strict=True))
    ]
    days = [c.day.isoformat() for c in aggregates.cells if c.kind == "day" and c.day]
    return {
        "experiment": plan.key,
        "engine": plan.engine.value,
        "settings_hash": plan.settings_hash(),
        "settings": plan.settings(),
        "watermark": _watermark_json(watermark),
        "as_of": as_of.isoformat(),
        "created_at": datetime.now(UTC).isoformat(),
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "timings_ms": {k: round(v, 3) for k, v in aggregates.timings_ms.items()},
        "units": units,
        "days": days,
        "results": results,
        "daily": daily,
        "omnibus": omnibus(plan, aggregates),
        "health": health,
    }


def analyze(*, services: Services, key: str, refresh: bool = False) -> dict[str, Any]:
    """The snapshot of experiment ``key``: the stored one when data and settings are unchanged
    (only the cheap watermark query runs), else a new analysis, stored and returned.

    ``refresh=True`` always recomputes.  The returned dict carries ``snapshot_id`` and
    ``cached`` on top of the stored payload.
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
            if row is not None:
                return {**row.payload, "snapshot_id": row.id, "cached": True}
    payload = run_analysis(warehouse=warehouse, plan=plan, watermark=watermark)
    with services.sessions.begin() as session:
        row = save_snapshot(
            session=session,
            key=key,
            settings_hash=settings_hash,
            watermark=watermark.cache_key(),
            payload=payload,
            duration_ms=payload["duration_ms"],
        )
        snapshot_id = row.id
    return {**payload, "snapshot_id": snapshot_id, "cached": False}


def latest(*, services: Services, key: str) -> dict[str, Any]:
    """The newest stored snapshot of ``key`` (NotFoundError if it was never analysed)."""
    with services.sessions() as session:
        get_experiment(session=session, key=key)
        row = latest_snapshot(session=session, key=key)
        if row is None:
            raise NotFoundError(
                f"experiment {key!r} has not been analysed yet: "
                f"POST /api/experiments/{key}/analyze or run `splitlab analyze {key}`",
                details={"key": key},
            )
        return {**row.payload, "snapshot_id": row.id, "cached": True}


def select_view(
    snapshot: dict[str, Any], *, segment: str | None = None, daily: bool = False
) -> dict[str, Any]:
    """The results view of a snapshot: overall results (or one segment's), ``daily`` only
    when asked for."""
    view = dict(snapshot)
    if segment is None:
        view["results"] = [r for r in snapshot["results"] if r["segment"] is None]
    else:
        view["results"] = [
            r for r in snapshot["results"] if r["segment"] and r["segment"]["name"] == segment
        ]
    if not daily:
        view.pop("daily", None)
    return view


def refresh_running(*, services: Services) -> int:
    """Analyse every running experiment (cache hits are cheap); returns how many were new."""
    from sqlalchemy import select

    from splitlab.store.tables import ExperimentRow

    with services.sessions() as session:
        keys = list(
            session.scalars(
                select(ExperimentRow.key).where(
                    ExperimentRow.status.in_([Status.RUNNING.value, Status.ROLLING_OUT.value])
                )
            )
        )
    fresh = 0
    for key in keys:
        if not analyze(services=services, key=key)["cached"]:
            fresh += 1
    return fresh

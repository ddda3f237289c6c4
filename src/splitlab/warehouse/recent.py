"""The units active in a recent window, as the analysis queries expect their units: for a
metric's baseline before any experiment measures it (``analysis.baseline``).

A unit is *active* when it has an exposure (to any experiment) or an event in
``[since, until]``; its anchor (``exposed_us``) is its first such moment, so a metric's
attribution window starts there, as it would at a first exposure. Every unit gets variant
code 0: one population, no arms.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import ibis.expr.types as ir

from splitlab.warehouse.queries import MICROS_PER_DAY, micros


def newest_activity(exposures: ir.Table, events: ir.Table) -> ir.Table:
    """At most one row, ``newest``: the newest exposure or event time (no row when both tables
    are empty: a NULL maximum of a non-nullable column does not read back on every engine)."""
    times = ibis.union(
        exposures.select(at=exposures.exposed_at), events.select(at=events.occurred_at)
    )
    latest = times.order_by(times.at.desc()).limit(1)
    return latest.select(newest=latest.at)


def recent_units(
    exposures: ir.Table, events: ir.Table, *, since: datetime, until: datetime
) -> ir.Table:
    """``unit_id, uid, variant, exposed_us, day``: one row per unit active in [since, until]
    (see the module), numbered, in the shape of ``queries.experiment_units``."""
    seen_exposed = exposures.filter(
        (exposures.exposed_at >= since) & (exposures.exposed_at <= until)
    ).select(unit_id=exposures.unit_id, at=exposures.exposed_at)
    seen_events = events.filter(
        (events.occurred_at >= since) & (events.occurred_at <= until)
    ).select(unit_id=events.unit_id, at=events.occurred_at)
    seen = ibis.union(seen_exposed, seen_events)
    first = seen.group_by("unit_id").agg(first_at=seen.at.min())
    backend = ""
    try:
        backend = str(events.get_backend().name)
    except Exception:  # an unbound table: the portable form
        backend = ""
    exposed_us = micros(first.first_at, backend)
    return first.select(
        unit_id=first.unit_id,
        uid=ibis.row_number().over(),
        variant=ibis.literal(0, type="int16"),
        exposed_us=exposed_us,
        day=(exposed_us / MICROS_PER_DAY).floor().cast("int64"),
    )

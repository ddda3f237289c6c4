"""Triggered populations (an activation condition per experiment): the analysed units cut to
those that reached the trigger event, each counted from its first trigger.

A unit is *triggered* when it has an event named ``trigger.event`` whose properties match
``trigger.filter``, at or after its exposure (``0 ≤ occurred − exposed``) and, with
``within_hours``, less than that many hours after it. Its ``exposed_us`` (and so every metric
window, pre-period and its ``day``) becomes the time of its first such event; its variant,
segments and covariates stay. The result has the columns of
:func:`~splitlab.warehouse.queries.experiment_units`, so the rest of the analysis pass is
unchanged: the sample-ratio check, results and daily series are then the triggered
population's.
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir

from splitlab.warehouse.queries import (
    MICROS_PER_DAY,
    MICROS_PER_HOUR,
    _backend_name,
    _filter_condition,
    micros,
)


def triggered_units(units: ir.Table, events: ir.Table, trigger: Any) -> ir.Table:
    """``units`` (stored analysed units with ``uid``) restricted to triggered units, with
    ``exposed_us`` and ``day`` moved to the first trigger event."""
    mine = events.filter(events.event_name == trigger.event)
    if trigger.filter:
        mine = mine.filter(_filter_condition(mine.properties, trigger.filter))
    mine = mine.select(
        trigger_unit=mine.unit_id, trigger_us=micros(mine.occurred_at, _backend_name(events))
    )
    joined = units.select("uid", "unit_id", "exposed_us").inner_join(
        mine, units.unit_id == mine.trigger_unit
    )
    offset = joined.trigger_us - joined.exposed_us
    condition = offset >= 0
    if trigger.within_hours is not None:
        condition = condition & (offset < round(trigger.within_hours * MICROS_PER_HOUR))
    first = (
        joined.filter(condition)
        .group_by(trigger_uid=joined.uid)
        .agg(first_us=joined.trigger_us.min())
    )
    kept = units.inner_join(first, units.uid == first.trigger_uid)
    columns: dict[str, Any] = {name: kept[name] for name in units.columns}
    columns["exposed_us"] = kept.first_us
    columns["day"] = (kept.first_us / MICROS_PER_DAY).floor().cast("int64")
    return kept.select(**columns)

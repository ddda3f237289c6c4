"""Exposed and converted units per variant: the counts behind a bandit's Beta posteriors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from splitlab.warehouse.base import Warehouse


class Conversions(NamedTuple):
    """Units per variant, and how many of them converted."""

    units: dict[str, int]
    converted: dict[str, int]


def conversions(warehouse: Warehouse, *, experiment_key: str, event: str) -> Conversions:
    """Per variant: the exposed units and those with an ``event`` at or after their first
    exposure; units exposed to two variants are left out. Two aggregates, no rows."""
    exposures = warehouse.exposures_table()
    exposures = exposures.filter(exposures.experiment_key == experiment_key)
    conflicts = warehouse.conflicts_table()
    conflicted = conflicts.filter(conflicts.experiment_key == experiment_key).select("unit_id")
    exposures = exposures.anti_join(conflicted, "unit_id")
    events = warehouse.events_table()
    events = events.filter(events.event_name == event).select(
        event_unit=events.unit_id, occurred_at=events.occurred_at
    )
    converted = exposures.semi_join(
        events,
        [exposures.unit_id == events.event_unit, events.occurred_at >= exposures.exposed_at],
    )
    return Conversions(_per_variant(exposures), _per_variant(converted))


def _per_variant(table: Any) -> dict[str, int]:
    counted = table.group_by("variant_key").aggregate(n=table.count()).to_pyarrow()
    return dict(
        zip(counted.column("variant_key").to_pylist(), counted.column("n").to_pylist(), strict=True)
    )

"""The warehouse's plain data: facts to write and per-item results (``ExperimentSummary``,
what validation checks an item against, is a domain object read from the app store).

A *fact* is one validated exposure or event, already normalised (UTC microseconds,
properties serialised to JSON text). Facts are tuples, not objects, because the batch path
builds hundreds of thousands of them per second.

Identity and deduplication: one rule, in ``splitlab.ids`` (the SDK uses it too); the SQL
twins below compute the same ids on DuckDB and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from splitlab.ids import SEPARATOR
from splitlab.ids import derive_id as derive_id  # the package's public name for it


def derive_id_sql(*parts: str) -> str:
    """SQL of ``ids.derive_id`` over column expressions (DuckDB and PostgreSQL)."""
    return f"md5(concat_ws(chr({ord(SEPARATOR)}), {', '.join(parts)}))"


def event_id_sql(experiment: str, unit: str, name: str, client: str) -> str:
    """SQL of ``ids.event_id``."""
    derived = derive_id_sql(f"COALESCE({experiment}, '')", unit, name)
    return f"COALESCE({client}, {derived})"


def exposure_id_sql(experiment: str, unit: str) -> str:
    """SQL of ``ids.exposure_id``."""
    return derive_id_sql(experiment, unit)


def conflict_id_sql(experiment: str, unit: str, variant: str) -> str:
    """SQL of ``ids.conflict_id``."""
    return derive_id_sql(experiment, unit, variant)


class Kind(StrEnum):
    EXPOSURE = "exposure"
    EVENT = "event"


class Fact(NamedTuple):
    """One validated exposure or event.

    ``key`` is the dedup key (``exposure_id`` or ``event_id``); ``event_id`` is what the
    client is told (its own id, or the derived one); ``name`` is ``"exposure"`` for exposures.
    """

    kind: Kind
    key: str
    event_id: str
    experiment_key: str | None
    variant_key: str | None
    unit_id: str
    name: str
    value: float | None
    occurred_us: int
    properties: str
    source: str


class ItemStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class ItemResult(NamedTuple):
    """What happened to one fact; ``conflict`` marks an exposure to a second variant."""

    status: ItemStatus
    event_id: str
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class Watermark:
    """Row counts and the newest ingestion time: changes whenever data changes."""

    exposures: int
    events: int
    conflicts: int
    last_ingested_at: datetime | None
    units: str = ""
    """The unit table's rows and newest write (``count:us``), "" when it is empty: in the
    cache key, not in ``last_ingested_at`` (which dates the events for metric windows)."""

    def cache_key(self) -> str:
        stamp = self.last_ingested_at.isoformat() if self.last_ingested_at else "-"
        key = f"{self.exposures}:{self.events}:{self.conflicts}:{stamp}"
        return f"{key}:units={self.units}" if self.units else key

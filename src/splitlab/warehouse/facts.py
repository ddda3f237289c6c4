"""The warehouse's plain data: facts to write and per-item results (``ExperimentSummary``,
what validation checks an item against, is a domain object read from the app store).

A *fact* is one validated exposure or event, already normalised (UTC microseconds,
properties serialised to JSON text). Facts are tuples, not objects, because the batch path
builds hundreds of thousands of them per second.

Identity and deduplication (the same rules in Python, DuckDB SQL and PostgreSQL SQL):

* an **event** is keyed by its ``event_id``: the client's ``eventId`` when it sends one,
  otherwise ``derive_id(experiment_key, unit_id, event_name)`` — so "one conversion per user
  and experiment" and "exactly once per id" are both a primary-key dedup;
* an **exposure** is keyed by ``derive_id(experiment_key, unit_id)`` (its ``exposure_id``):
  one row per (experiment, unit). The same unit again in another variant is a *conflict*,
  keyed by ``derive_id(experiment_key, unit_id, variant_key)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

SEPARATOR = "\x1f"
"""ASCII unit separator between the parts of a derived id (``chr(31)`` in SQL)."""

def derive_id(*parts: str) -> str:
    """The deterministic id of a fact without a client id: md5 hex of the joined parts.

    SQL twin: ``md5(concat_ws(chr(31), part, ...))`` on DuckDB and PostgreSQL.
    """
    return hashlib.md5(SEPARATOR.join(parts).encode(), usedforsecurity=False).hexdigest()


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

    def cache_key(self) -> str:
        stamp = self.last_ingested_at.isoformat() if self.last_ingested_at else "-"
        return f"{self.exposures}:{self.events}:{self.conflicts}:{stamp}"

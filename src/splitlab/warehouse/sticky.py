"""Sticky bucketing over the warehouse: each unit's first recorded variant.

Sticky lookups are only needed for experiments whose allocation (weights or coverage)
changed after they started: until then, hashing reproduces every unit's first assignment,
so the hot path of an unchanged experiment never touches the sticky store.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from splitlab.warehouse.base import Warehouse


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class _StickyEntry:
    assignments: dict[str, str] = field(default_factory=dict)
    loaded_until: datetime | None = None  # newest ingested_at seen
    checked_at: float = 0.0  # monotonic time of the last refresh
    lock: threading.Lock = field(default_factory=threading.Lock)


class WarehouseStickyStore:
    """A ``StickyStore`` over the warehouse's exposures: each unit's first recorded variant.

    Entries of an experiment are loaded in full on first use, then refreshed incrementally
    (rows ingested since the last load, with an overlap) at most every ``refresh_interval``
    seconds; ``set`` adds a unit this process has just recorded. The seed is not part of
    the key: it cannot change once an experiment has exposures (a stopped experiment never
    restarts), so an experiment's exposures all belong to one seed.

    Memory grows with the exposed units of sticky experiments (~150 bytes a unit).
    """

    OVERLAP = timedelta(seconds=5)
    """Re-read this much before the newest row seen, for rows committed slightly out of
    order by concurrent writers (PostgreSQL with several server processes)."""

    def __init__(self, warehouse: Warehouse, *, refresh_interval: float = 2.0) -> None:
        self.warehouse = warehouse
        self.refresh_interval = refresh_interval
        self._entries: dict[str, _StickyEntry] = {}
        self._lock = threading.Lock()

    def _entry(self, experiment_key: str) -> _StickyEntry:
        entry = self._entries.get(experiment_key)
        if entry is None:
            with self._lock:
                entry = self._entries.setdefault(experiment_key, _StickyEntry())
        return entry

    def is_fresh(self, experiment_key: str) -> bool:
        entry = self._entries.get(experiment_key)
        return (
            entry is not None
            and entry.checked_at > 0
            and time.monotonic() - entry.checked_at < self.refresh_interval
        )

    def loaded(self, experiment_key: str) -> bool:
        entry = self._entries.get(experiment_key)
        return entry is not None and entry.checked_at > 0

    def refresh(self, experiment_key: str) -> None:
        """Load (or incrementally refresh) one experiment's stored assignments. Blocking."""
        entry = self._entry(experiment_key)
        with entry.lock:
            if self.is_fresh(experiment_key):
                return
            table = self.warehouse.exposures_table()
            query = table.filter(table.experiment_key == experiment_key)
            if entry.loaded_until is not None:
                query = query.filter(table.ingested_at >= entry.loaded_until - self.OVERLAP)
            rows = query.select("unit_id", "variant_key", "ingested_at").to_pyarrow()
            units = rows.column("unit_id").to_pylist()
            variants = rows.column("variant_key").to_pylist()
            # the warehouse holds the first variant: it wins over what this process set
            entry.assignments.update(zip(units, variants, strict=True))
            if rows.num_rows:
                newest = max(rows.column("ingested_at").to_pylist())
                if entry.loaded_until is None or newest > entry.loaded_until:
                    entry.loaded_until = _aware(newest)
            entry.checked_at = time.monotonic()

    def get(self, experiment_key: str, seed: str, unit_id: str) -> str | None:
        if experiment_key not in self._entries:
            self.refresh(experiment_key)
        return self._entry(experiment_key).assignments.get(unit_id)

    def set(self, experiment_key: str, seed: str, unit_id: str, variant_key: str) -> None:
        self._entry(experiment_key).assignments.setdefault(unit_id, variant_key)

    def assignments(self, experiment_key: str) -> dict[str, str]:
        """Every stored ``unit_id -> variant`` of one experiment (for bulk assignment)."""
        self.refresh(experiment_key)
        return dict(self._entry(experiment_key).assignments)


class ReadOnlySticky:
    """A view of a sticky store whose ``set`` does nothing: the API decides separately
    whether an assignment becomes sticky (only once its exposure is recorded)."""

    __slots__ = ("store",)

    def __init__(self, store: WarehouseStickyStore) -> None:
        self.store = store

    def get(self, experiment_key: str, seed: str, unit_id: str) -> str | None:
        return self.store.get(experiment_key, seed, unit_id)

    def set(self, experiment_key: str, seed: str, unit_id: str, variant_key: str) -> None:
        return None

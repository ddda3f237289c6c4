"""Sticky bucketing: once a unit is assigned, it keeps its variant.

Entries are keyed by ``(experiment_key, seed, unit_id)``: changing an experiment's weights
or coverage leaves them in place, changing its seed starts a new experiment with no
entries. The application store provides a persistent implementation of the same Protocol.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class StickyStore(Protocol):
    """Where assigned variants are remembered. Implementations must be thread-safe."""

    def get(self, experiment_key: str, seed: str, unit_id: str) -> str | None:
        """The variant key stored for this unit, or None."""
        ...

    def set(self, experiment_key: str, seed: str, unit_id: str, variant_key: str) -> None:
        """Remember the unit's variant (overwrites any previous entry)."""
        ...


class InMemoryStickyStore:
    """A process-local ``StickyStore`` backed by a dict (tests, SDK, single process)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, experiment_key: str, seed: str, unit_id: str) -> str | None:
        return self._entries.get((experiment_key, seed, unit_id))

    def set(self, experiment_key: str, seed: str, unit_id: str, variant_key: str) -> None:
        with self._lock:
            self._entries[(experiment_key, seed, unit_id)] = variant_key

    def assignments(self, experiment_key: str, seed: str) -> dict[str, str]:
        """All stored ``unit_id -> variant_key`` of one experiment seed (for bulk runs)."""
        with self._lock:
            return {
                unit: variant
                for (key, entry_seed, unit), variant in self._entries.items()
                if key == experiment_key and entry_seed == seed
            }

    def __len__(self) -> int:
        return len(self._entries)

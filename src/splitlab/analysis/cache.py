"""A small in-process cache of views computed on demand beside a snapshot (ad-hoc breakdowns,
the days-since-exposure view): bounded, least recently used first out, safe across the
server's threads, keyed by :func:`view_key` so that unchanged data and settings reuse the
view and any change misses it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from splitlab.warehouse import Warehouse

V = TypeVar("V")

ViewKey = tuple[str, str, str, str]


def view_key(warehouse: Warehouse, experiment: str, settings_hash: str, data: str) -> ViewKey:
    """The warehouse (this connection: two warehouses may hold the same counts), the
    experiment, the settings hash of the plan the view uses and the data watermark's key."""
    return (f"{id(warehouse)}:{warehouse.url}", experiment, settings_hash, data)


class ViewCache(Generic[V]):
    """At most ``size`` views; reading one makes it the most recently used."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._views: OrderedDict[ViewKey, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: ViewKey) -> V | None:
        with self._lock:
            found = self._views.get(key)
            if found is not None:
                self._views.move_to_end(key)
            return found

    def put(self, key: ViewKey, view: V) -> None:
        with self._lock:
            self._views[key] = view
            self._views.move_to_end(key)
            while len(self._views) > self.size:
                self._views.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._views.clear()

"""Short-lived caches of the hot paths (``/api/track``, ``/api/events``, ``/api/assign``):
API-key principals and experiment summaries, loaded from the app store in a worker thread.

``Refreshing`` keeps every lookup off the request's critical path once it has been made:

* a value is reused for ``ttl`` seconds; after that it is still served while *one* refresh
  runs in the background (stale-while-revalidate), so a revoked key or a stopped experiment
  takes effect within ``ttl`` plus one lookup;
* concurrent requests that miss the same key share one load (single flight);
* a change made through this process clears the caches it concerns at once
  (``Services.changes``), and one made by another process (a second server worker, the CLI)
  is noticed by ``StoreVersions`` within ``ttl``: every hot path first checks the store's
  cache versions, at most once per ``ttl``, and clears what moved.

Why: with a plain expiring cache every in-flight request found the entry expired at the
same moment and each ran its own lookup — 16 connections meant 16 SQLAlchemy loads
competing for the GIL every ``ttl`` seconds, which was most of ``/api/track``'s p99.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from splitlab.api.deps import get_principal, request_api_key
from splitlab.domain import LOCAL_ADMIN, Principal
from splitlab.errors import AuthenticationError
from splitlab.services import Services
from splitlab.store.users import authenticate_api_key
from splitlab.store.versions import ACCESS, current_versions

log = logging.getLogger(__name__)

V = TypeVar("V")

MAX_ENTRIES = 10_000
"""Beyond this many keys the cache starts again empty (bounded memory)."""


class Refreshing(Generic[V]):
    """Values by key from ``load(keys) -> {key: value}`` (blocking; run in a worker thread).

    A value for which ``usable`` is false (say, an experiment that is not running) is never
    served from the cache: every request loads it again (sharing concurrent loads), so an
    experiment that was just started is accepted at once. A load that raises drops the keys'
    entries and raises in every request waiting for it.
    """

    def __init__(
        self,
        ttl: float,
        load: Callable[[frozenset[str]], Mapping[str, V]],
        usable: Callable[[V], bool] = lambda value: True,
    ) -> None:
        self.ttl = ttl
        self._load = load
        self._usable = usable
        self._entries: dict[str, tuple[float, V]] = {}
        self._flights: dict[str, asyncio.Task[None]] = {}
        self._cleared_at = 0.0

    def clear(self) -> None:
        """Forget every value; a load already running is done again, as it may predate the
        change that caused this. Safe to call from any thread."""
        self._cleared_at = time.monotonic()
        self._entries.clear()

    def get(self, key: str) -> V | None:
        """The cached value (fresh or stale), None when there is none."""
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    async def ensure(self, keys: Collection[str]) -> None:
        """Make every key's value available to ``get``: wait for the missing ones, start a
        background refresh of the stale ones."""
        now = time.monotonic()
        missing: set[str] = set()
        stale: set[str] = set()
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or not self._usable(entry[1]):
                missing.add(key)
            elif now - entry[0] >= self.ttl:
                # ttl 0 turns the cache off: every request sees the store as it is now
                (stale if self.ttl > 0 else missing).add(key)
        if stale:
            self._start(stale)
        if missing:
            flights = self._start(missing)
            await asyncio.gather(*flights)

    def _start(self, keys: set[str]) -> set[asyncio.Task[None]]:
        """The loads that will bring ``keys``: running ones joined, one new for the rest (a
        load left by another event loop, e.g. a closed test client's, is not joined)."""
        loop = asyncio.get_running_loop()
        running = {
            key: task
            for key in keys
            if (task := self._flights.get(key)) is not None and task.get_loop() is loop
        }
        flights = set(running.values())
        new = frozenset(keys - running.keys())
        if new:
            task = loop.create_task(self._run(new))
            task.add_done_callback(_retrieve)
            for key in new:
                self._flights[key] = task
            flights.add(task)
        return flights

    async def _run(self, keys: frozenset[str]) -> None:
        try:
            while True:
                started = time.monotonic()
                values = await run_in_threadpool(self._load, keys)
                if started >= self._cleared_at:
                    break
        except BaseException:
            for key in keys:
                self._entries.pop(key, None)
            raise
        else:
            if len(self._entries) + len(values) > MAX_ENTRIES:
                self._entries.clear()
            stamp = time.monotonic()
            for key, value in values.items():
                self._entries[key] = (stamp, value)
        finally:
            task = asyncio.current_task()
            for key in keys:
                if self._flights.get(key) is task:
                    del self._flights[key]


def _retrieve(task: asyncio.Task[None]) -> None:
    """A background refresh's error (nobody awaits it) goes to the log, not to asyncio's
    'exception was never retrieved'; a request waiting on the same load gets it too."""
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        if not isinstance(error, AuthenticationError):
            log.warning("cache refresh failed: %r", error)


def principal_cache(services: Services) -> Refreshing[Principal]:
    """The process's API-key cache (``ingest_cache_seconds``), shared by every hot path."""
    cache = services.extras.get("api_key_cache")
    if cache is None:

        def load(keys: frozenset[str]) -> dict[str, Principal]:
            found = {}
            with services.sessions() as session:
                for key in keys:
                    principal = authenticate_api_key(session=session, key=key)
                    if principal is None:
                        raise AuthenticationError("invalid or revoked API key")
                    found[key] = principal
            return found

        cache = services.extras["api_key_cache"] = Refreshing(
            services.settings.ingest_cache_seconds, load
        )
        services.changes.subscribe(ACCESS, cache.clear)
    return cache  # type: ignore[no-any-return]


class StoreVersions:
    """This process's view of the store's cache versions (``store.versions``): polled at
    most once per ``interval`` seconds (concurrent requests share the poll), and when a
    group's counter moved, that group's caches are cleared through ``Services.changes``
    before the request goes on — so a change made by another process takes effect here
    within ``interval``."""

    def __init__(self, services: Services, interval: float) -> None:
        self.services = services
        self.interval = interval
        self._seen: dict[str, int] | None = None
        self._checked_at = float("-inf")
        self._poll_task: asyncio.Future[None] | None = None

    async def check(self) -> None:
        if self.interval <= 0 or time.monotonic() - self._checked_at < self.interval:
            return  # without a cache there is nothing to bring up to date
        loop = asyncio.get_running_loop()
        task = self._poll_task
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._poll_task = asyncio.ensure_future(run_in_threadpool(self.poll))
        await asyncio.shield(task)

    def poll(self) -> None:
        """Read the versions and clear the caches of every group that moved. Blocking."""
        started = time.monotonic()
        versions = current_versions(self.services.engine)
        seen, self._seen = self._seen, versions
        if seen is not None:
            moved = {
                name
                for name in versions.keys() | seen.keys()
                if versions.get(name) != seen.get(name)
            }
            if moved:
                log.debug("cache versions moved: %s", sorted(moved))
                self.services.changes.notify(moved)
        self._checked_at = started


def store_versions(services: Services) -> StoreVersions:
    """This process's ``StoreVersions``, polled every ``ingest_cache_seconds``."""
    found = services.extras.get("store_versions")
    if found is None:
        found = services.extras["store_versions"] = StoreVersions(
            services, services.settings.ingest_cache_seconds
        )
    return found  # type: ignore[no-any-return]


async def cached_principal(request: Request, services: Services) -> Principal:
    """The caller: an API key through ``principal_cache``; a dashboard cookie (rare on these
    paths) the usual way, with its CSRF check.

    Every hot path starts here, so this first brings the process's caches up to date with
    the store's cache versions (``StoreVersions``)."""
    await store_versions(services).check()
    if not services.settings.auth_enabled:
        return LOCAL_ADMIN
    api_key = request_api_key(request)
    if not api_key:
        return await run_in_threadpool(get_principal, request, services)
    cache = principal_cache(services)
    await cache.ensure((api_key,))
    principal = cache.get(api_key)
    assert principal is not None  # ensure() raised otherwise
    return principal

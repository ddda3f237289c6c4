"""Short-lived caches of the hot paths (``/api/track``, ``/api/events``, ``/api/assign``):
API-key principals, experiment summaries and the live experiments' assignment configs
(``Allocations``), loaded from the app store in a worker thread.

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
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from splitlab.api.deps import get_principal, request_api_key
from splitlab.assignment import CompiledExperiment, ExperimentConfig
from splitlab.assignment.specs import config_from_spec
from splitlab.domain import LOCAL_ADMIN, Principal
from splitlab.errors import AuthenticationError
from splitlab.services import Services
from splitlab.store.live import (
    allocation_changed,
    experiment_statuses,
    experiments_probe,
    live_specs,
)
from splitlab.store.users import authenticate_api_key
from splitlab.store.versions import ACCESS, EXPERIMENTS, current_versions
from splitlab.warehouse.sticky import WarehouseStickyStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

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
    cache = services.api_key_cache
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

        cache = services.api_key_cache = Refreshing(services.settings.ingest_cache_seconds, load)
        services.changes.subscribe(ACCESS, cache.clear)
    return cache


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
    found = services.store_versions
    if found is None:
        found = services.store_versions = StoreVersions(
            services, services.settings.ingest_cache_seconds
        )
    return found


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


# ---------------------------------------------------------------- live assignment configs


class RecentExposures:
    """(experiment, unit) pairs whose exposure this process saw committed, so a repeated
    assignment skips the write (the warehouse would report a duplicate anyway). Bounded:
    cleared when full, which only costs a few redundant writes."""

    def __init__(self, max_items: int = 1_000_000) -> None:
        self.max_items = max_items
        self._seen: set[tuple[str, str]] = set()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair in self._seen

    def add(self, pair: tuple[str, str]) -> None:
        if len(self._seen) >= self.max_items:
            self._seen.clear()
        self._seen.add(pair)


@dataclass(frozen=True, slots=True)
class LiveExperiment:
    """A running experiment ready to assign: its config, compiled, and whether earlier
    exposures may disagree with hashing (weights or coverage changed since the start)."""

    config: ExperimentConfig
    compiled: CompiledExperiment
    sticky: bool
    type: str


@dataclass(frozen=True)
class AllocationSnapshot:
    """Everything assignment needs, swapped atomically on reload."""

    live: dict[str, LiveExperiment]
    statuses: dict[str, str]
    """Status of every experiment (to tell "not running" from "unknown")."""
    version: str
    sdk_body: bytes
    """The ``GET /api/sdk/config`` response body for this version."""

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def load_snapshot(session: Session) -> AllocationSnapshot:
    """Read every experiment's status and the live ones' configs from the app store."""
    statuses = experiment_statuses(session=session)
    specs = live_specs(session=session)
    changed = allocation_changed(session=session, starts={s.key: s.start_at for s in specs})
    live = {}
    for spec in specs:
        config = config_from_spec(spec)
        live[spec.key] = LiveExperiment(config, config.compiled, spec.key in changed, spec.type)
    experiments = [item.config.to_dict() for item in live.values()]
    canonical = orjson.dumps(experiments, option=orjson.OPT_SORT_KEYS)
    version = hashlib.sha256(canonical).hexdigest()[:32]
    body = orjson.dumps({"experiments": experiments, "version": version})
    return AllocationSnapshot(live, statuses, version, body)


class Allocations:
    """The process-wide cache of live experiment configs.

    At most every ``check_interval`` seconds a request runs a cheap probe
    (``store.live.experiments_probe``), and only when it changed are the configs reloaded,
    so a change made by another process takes effect within ``check_interval``. A change
    made through this process ``invalidate``s at once. An experiment the snapshot does not
    know as running is probed again before the answer (``current(fresh_after=...)``): a
    running experiment is never reported unknown.
    """

    def __init__(
        self,
        services: Services,
        *,
        check_interval: float = 0.5,
        sticky_refresh_interval: float = 2.0,
    ) -> None:
        self.services = services
        self.check_interval = check_interval
        self._sticky_refresh_interval = sticky_refresh_interval
        self._sticky: WarehouseStickyStore | None = None
        self.recorded = RecentExposures()
        self._snapshot: AllocationSnapshot | None = None
        self._token: tuple[Any, ...] | None = None
        self._checked_at = float("-inf")
        """When the probe behind the current snapshot started (monotonic)."""
        self._invalidated_at = float("-inf")
        self._lock = threading.Lock()
        self._task: asyncio.Future[AllocationSnapshot] | None = None

    @property
    def sticky(self) -> WarehouseStickyStore:
        if self._sticky is None:
            self._sticky = WarehouseStickyStore(
                self.services.warehouse, refresh_interval=self._sticky_refresh_interval
            )
        return self._sticky

    def invalidate(self) -> None:
        """Probe the app store again on the next request (after an in-process change); a
        probe running meanwhile does not count. Safe to call from any thread."""
        self._invalidated_at = time.monotonic()

    def _stale(self, fresh_after: float = float("-inf")) -> bool:
        checked = self._checked_at
        return (
            self._snapshot is None
            or checked < fresh_after
            or checked <= self._invalidated_at
            or time.monotonic() - checked >= self.check_interval
        )

    def refresh(self, fresh_after: float = float("-inf")) -> AllocationSnapshot:
        """Probe the app store and reload when something changed. Blocking."""
        with self._lock:
            if not self._stale(fresh_after):
                assert self._snapshot is not None
                return self._snapshot
            started = time.monotonic()
            with self.services.sessions() as session:
                token = experiments_probe(session=session)
                if self._snapshot is None or token != self._token:
                    self._snapshot = load_snapshot(session)
                    self._token = token
            self._checked_at = started
            return self._snapshot

    async def current(self, *, fresh_after: float | None = None) -> AllocationSnapshot:
        """The current snapshot; concurrent requests share one probe when it is due.
        ``fresh_after`` (a ``time.monotonic()`` reading) asks for a snapshot probed no
        earlier than that, e.g. before answering that an experiment is not running."""
        after = float("-inf") if fresh_after is None else fresh_after
        for _ in range(3):  # a probe can be overtaken by an invalidation: try again, bounded
            if not self._stale(after):
                break
            loop = asyncio.get_running_loop()
            task = self._task
            if task is None or task.done() or task.get_loop() is not loop:
                task = self._task = asyncio.ensure_future(run_in_threadpool(self.refresh, after))
            await asyncio.shield(task)
            if fresh_after is None:
                break
        assert self._snapshot is not None
        return self._snapshot


def allocations_of(services: Services) -> Allocations:
    """The ``Allocations`` of this process (created on first use), told of every change to
    experiments committed through this process."""
    found = services.allocations
    if found is None:
        found = services.allocations = Allocations(services)
        services.changes.subscribe(EXPERIMENTS, found.invalidate)
    return found

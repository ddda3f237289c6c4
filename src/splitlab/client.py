"""The Python SDK: local assignment from the server's configs, exposures and events queued
and sent in batches.

::

    from splitlab.client import Client

    with Client("https://splitlab.example.com", api_key) as splitlab:
        a = splitlab.assign("checkout", user.id, {"country": "NL"})
        if a.variant == "one-page":
            ...
        splitlab.track(user.id, "purchase", value=19.99)

* **Local evaluation.** ``assign`` hashes on the caller's thread with the configs of
  ``GET /api/sdk/config`` (refreshed every ``refresh_interval`` seconds in a background
  thread, with ``If-None-Match``): no HTTP request per call. An experiment the config does
  not list (unknown, or not running) answers ``reason="inactive"``.
* **Stickiness.** Units keep the variant this process first gave them across weight
  changes (an in-memory ``StickyStore`` by default; pass ``sticky=`` to share one between
  processes). The server's ``/api/assign`` is sticky across processes too.
* **Exactly once.** Each item gets its ``eventId`` when it is queued — exposures a
  deterministic one per (experiment, unit), the same the server derives; events a random
  one — so a batch retried after a lost response is stored once (the server reports the
  repeats as duplicates).
* **Delivery.** A background thread sends the queue every ``flush_interval`` seconds in
  batches of ``batch_size`` to ``POST /api/events``. Connection errors, 5xx and 429 are
  retried with exponential backoff (the batch stays at the head of the line); any other 4xx
  drops the batch (it would fail again) and counts it in ``stats().failed``.
* **Bounded queue.** At ``max_queue`` items the *oldest* queued item is dropped to make
  room (counted in ``stats().dropped``): recent data is worth more, and a dropped
  exposure is recorded again the next time the unit is assigned in a new process.
* **Shutdown.** ``close()`` (also run at interpreter exit, and by ``with``) stops the
  thread and sends everything still queued, retrying until ``close_timeout``.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from splitlab import ids
from splitlab.assignment import Assignment, ExperimentConfig, InMemoryStickyStore, StickyStore
from splitlab.ids import EXPOSURE

log = logging.getLogger("splitlab.client")

RECORDED_REASONS = frozenset({"assigned", "sticky"})
_INACTIVE = Assignment(None, None, False, "inactive", None)
_MAX_REMEMBERED_EXPOSURES = 1_000_000


class ClientError(Exception):
    """The server refused the client (bad API key, missing scope)."""


@dataclass(frozen=True)
class ClientStats:
    """Counters since the client started.

    ``queued``: waiting to be sent (including a batch being retried); ``sent``: stored by
    the server; ``duplicates``: already stored (a retried batch, a repeated exposure);
    ``rejected``: refused item by item by the server (unknown or stopped experiment…);
    ``failed``: in batches the server refused as a whole (4xx); ``dropped``: pushed out of
    a full queue; ``retries``: failed attempts that were retried.
    """

    queued: int
    sent: int
    duplicates: int
    rejected: int
    failed: int
    dropped: int
    retries: int


class _Retry(Exception):
    """A batch that may succeed later (connection error, 5xx, 429)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Client:
    """Assign locally, track events, deliver both in the background (see module docs).

    ``api_key`` is a key with scope ``ingest`` (or ``admin``); leave it out for a server
    with ``SPLITLAB_AUTH=off`` on loopback. ``transport`` is an optional
    ``httpx.BaseTransport`` (proxies, tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        refresh_interval: float = 30.0,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        batch_size: int = 1000,
        timeout: float = 10.0,
        retry_backoff: float = 0.5,
        max_retry_delay: float = 30.0,
        close_timeout: float = 30.0,
        sticky: StickyStore | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be at least 1")
        self.refresh_interval = refresh_interval
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.retry_backoff = retry_backoff
        self.max_retry_delay = max_retry_delay
        self.close_timeout = close_timeout
        self.sticky: StickyStore = sticky if sticky is not None else InMemoryStickyStore()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._configs: dict[str, ExperimentConfig] = {}
        self._etag: str | None = None
        self.version: str | None = None
        self._queue: deque[dict[str, Any]] = deque()
        self._inflight: list[dict[str, Any]] = []
        self._exposed: set[tuple[str, str]] = set()
        self._lock = threading.Lock()  # queue, counters
        self._send_lock = threading.Lock()  # one sender at a time
        self._counts = dict.fromkeys(
            ("sent", "duplicates", "rejected", "failed", "dropped", "retries"), 0
        )
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._last_refresh = 0.0
        self._attempt = 0
        self.refresh(raise_on_auth=True)
        self._thread = threading.Thread(target=self._run, name="splitlab-client", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------------ public API

    @property
    def experiments(self) -> dict[str, ExperimentConfig]:
        """The configs in use, by experiment key."""
        return dict(self._configs)

    def assign(
        self, experiment: str, unit_id: str, attributes: Mapping[str, Any] | None = None
    ) -> Assignment:
        """Assign ``unit_id`` locally and queue its exposure (when hashed or sticky into a
        variant; forced QA variants are not exposures)."""
        config = self._configs.get(experiment)
        if config is None:
            return _INACTIVE
        result = config.compiled.assign(unit_id, attributes, sticky=self.sticky)
        if result.reason in RECORDED_REASONS and (experiment, unit_id) not in self._exposed:
            assert result.variant is not None
            self._enqueue(
                {
                    "eventType": EXPOSURE,
                    "experimentKey": experiment,
                    "variantKey": result.variant,
                    "userKey": unit_id,
                    "eventId": ids.event_id(experiment, unit_id, EXPOSURE),
                    "occurredAt": _now_iso(),
                    "props": dict(attributes) if attributes else None,
                }
            )
            if len(self._exposed) >= _MAX_REMEMBERED_EXPOSURES:
                self._exposed.clear()  # only saves traffic: the server deduplicates anyway
            self._exposed.add((experiment, unit_id))
        return result

    def track(
        self,
        unit_id: str,
        event: str,
        value: float | None = None,
        props: Mapping[str, Any] | None = None,
        experiment: str | None = None,
    ) -> str:
        """Queue a metric event; returns its ``eventId`` (fixed now, so retries dedupe)."""
        event_id = uuid.uuid4().hex
        item: dict[str, Any] = {
            "eventType": event,
            "userKey": unit_id,
            "eventId": event_id,
            "occurredAt": _now_iso(),
        }
        if value is not None:
            item["value"] = value
        if props:
            item["props"] = dict(props)
        if experiment is not None:
            item["experimentKey"] = experiment
        self._enqueue(item)
        return event_id

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now, retrying failures until ``timeout`` seconds have
        passed (None: until done). True when nothing is left to send."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self._send_all():
                    return True
            except _Retry as retry:
                delay = self._backoff(retry)
                if deadline is not None and time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)

    def refresh(self, *, raise_on_auth: bool = False) -> bool:
        """Fetch the configs now (conditional on the ETag). True when they changed."""
        self._last_refresh = time.monotonic()
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = self._http.get("/api/sdk/config", headers=headers)
        except httpx.HTTPError as exc:
            log.warning("splitlab: cannot fetch experiment configs: %s", exc)
            return False
        if response.status_code == 304:
            return False
        if response.status_code in (401, 403) and raise_on_auth:
            raise ClientError(f"GET /api/sdk/config: {response.status_code} {response.text}")
        if response.status_code != 200:
            log.warning(
                "splitlab: config fetch answered %s: %s", response.status_code, response.text
            )
            return False
        body = response.json()
        self._configs = {
            config.key: config
            for config in (ExperimentConfig.from_dict(item) for item in body["experiments"])
        }
        self.version = body.get("version")
        self._etag = response.headers.get("etag")
        return True

    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(queued=len(self._queue) + len(self._inflight), **self._counts)

    def close(self, timeout: float | None = None) -> bool:
        """Stop the background thread and deliver what is queued (retrying up to
        ``timeout``, default ``close_timeout``). True when everything was delivered."""
        if self._closed.is_set():
            return not (self._queue or self._inflight)
        self._closed.set()
        self._wake.set()
        atexit.unregister(self.close)
        self._thread.join()
        delivered = self.flush(self.close_timeout if timeout is None else timeout)
        if not delivered:
            log.error("splitlab: %d item(s) not delivered at close", self.stats().queued)
        self._http.close()
        return delivered

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _enqueue(self, item: dict[str, Any]) -> None:
        if self._closed.is_set():
            raise RuntimeError("this splitlab Client is closed")
        with self._lock:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self._counts["dropped"] += 1
            self._queue.append(item)
            wake = len(self._queue) >= self.batch_size
        if wake:
            self._wake.set()

    def _send_all(self) -> bool:
        """Send batches until the queue is empty; raises ``_Retry`` on a retriable failure
        (the failed batch stays in flight, to be sent first next time)."""
        with self._send_lock:
            while True:
                if not self._inflight:
                    with self._lock:
                        count = min(self.batch_size, len(self._queue))
                        self._inflight = [self._queue.popleft() for _ in range(count)]
                if not self._inflight:
                    return True
                self._send(self._inflight)
                self._inflight = []
                self._attempt = 0

    def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            response = self._http.post(
                "/api/events",
                content=orjson.dumps({"events": batch}),
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            raise _Retry(f"connection error: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            after = response.headers.get("retry-after")
            raise _Retry(f"HTTP {status}", float(after) if after and after.isdigit() else None)
        if status >= 400:
            log.error(
                "splitlab: %d item(s) refused (HTTP %s, not retried): %s",
                len(batch),
                status,
                response.text[:500],
            )
            with self._lock:
                self._counts["failed"] += len(batch)
            return
        body = response.json()
        for result in body.get("results", []):
            if result.get("status") == "rejected":
                log.warning("splitlab: item rejected: %s", result.get("error"))
        with self._lock:
            self._counts["sent"] += int(body.get("accepted", 0))
            self._counts["duplicates"] += int(body.get("duplicates", 0))
            self._counts["rejected"] += int(body.get("rejected", 0))

    def _backoff(self, retry: _Retry) -> float:
        with self._lock:
            self._counts["retries"] += 1
        self._attempt += 1
        log.warning("splitlab: sending failed (%s); retry %d", retry, self._attempt)
        if retry.after is not None:
            return min(retry.after, self.max_retry_delay)
        delay = self.retry_backoff * 2 ** min(self._attempt - 1, 20)
        return min(delay, self.max_retry_delay) * random.uniform(0.8, 1.2)

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._closed.is_set():
                break
            waited = time.monotonic() - self._last_refresh
            if waited >= self.refresh_interval or (self.version is None and waited >= 1):
                try:
                    self.refresh()
                except Exception:  # a bad response must not kill the thread
                    log.exception("splitlab: config refresh failed")
            try:
                self._send_all()
            except _Retry as retry:
                self._closed.wait(self._backoff(retry))
            except Exception:
                log.exception("splitlab: unexpected error while sending")


__all__ = ["Client", "ClientError", "ClientStats"]

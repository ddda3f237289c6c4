"""Notifications: signed JSON webhooks from the audit log, delivered with retries.

* **Outbox.** :func:`enqueue_events` (run by each scheduler tick) reads the audit entries
  past a cursor kept in ``scheduler_state`` (row ``webhooks``) and enqueues one delivery per
  notable entry — recommendation changes, guardrail auto-stops, ramp steps, human decisions,
  the scheduler's own starts and stops — under the event id ``audit-{id}``, so running it
  twice enqueues nothing twice. The cursor starts at the newest entry the first time (no
  flood of old history) and moves past entries without a receiver configured.
* **Signature.** The body is the event as compact JSON. With ``SPLITLAB_WEBHOOK_SECRET``
  set, ``X-Splitlab-Signature: sha256=<hex>`` is HMAC-SHA256 of ``{timestamp}.{body}`` with
  the secret and ``X-Splitlab-Timestamp`` the Unix time it was signed at (a receiver checks
  both, :func:`verify_signature`, so a captured request cannot be replayed later).
* **Delivery.** :class:`WebhookSender` posts due deliveries from a worker thread: a 2xx
  answer delivers; anything else (status, timeout, refused connection) retries after
  ``SPLITLAB_WEBHOOK_RETRY_SECONDS`` doubling per attempt (capped at an hour) until
  ``SPLITLAB_WEBHOOK_MAX_ATTEMPTS``. Neither a request nor a scheduler tick ever waits on a
  receiver: both only write the outbox.

The HTTP client (httpx) is a named deviation of the ``decisions`` lane
(tests/test_architecture.py): the sender belongs with the outbox it drains, and it runs only
in its worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from splitlab.store.audit import audit_to_dict
from splitlab.store.scheduler_state import read_value, write_value
from splitlab.store.tables import AuditRow
from splitlab.store.webhooks import (
    audit_after,
    claim,
    due_deliveries,
    enqueue,
    newest_audit_id,
    record_attempt,
)

if TYPE_CHECKING:
    from splitlab.services import Services

log = logging.getLogger("splitlab.webhooks")

CURSOR = "webhooks"
"""The ``scheduler_state`` row holding the id of the last audit entry looked at."""
SIGNATURE_HEADER = "X-Splitlab-Signature"
TIMESTAMP_HEADER = "X-Splitlab-Timestamp"
EVENT_HEADER = "X-Splitlab-Event"
DELIVERY_HEADER = "X-Splitlab-Delivery"
MAX_RETRY_SECONDS = 3600.0
BATCH = 500

EVENT_TYPES = {
    "recommendation": "recommendation.changed",
    "auto_stop": "experiment.auto_stopped",
    "ramp_create": "ramp.created",
    "ramp_step": "ramp.step",
    "ramp_complete": "ramp.completed",
    "ramp_rollback": "ramp.rolled_back",
    "ramp_cancel": "ramp.cancelled",
}
"""Audit action → event type. Human decisions (``decision…`` actions) become
``decision.<rest>``; the scheduler's own transitions ``experiment.transition``."""


def event_type(row: AuditRow) -> str | None:
    """The notification an audit entry makes, or ``None`` when it makes none."""
    if row.action in EVENT_TYPES:
        return EVENT_TYPES[row.action]
    if row.action.startswith("decision"):
        rest = row.action.removeprefix("decision").strip("_")
        return f"decision.{rest or 'recorded'}"
    if row.action == "transition" and row.actor == "scheduler":
        return "experiment.transition"
    return None


def event_payload(row: AuditRow, kind: str) -> dict[str, Any]:
    """The JSON body of the notification of audit entry ``row`` (its configuration snapshot
    left out: receivers fetch the experiment when they need it)."""
    entry = audit_to_dict(row)
    entry.pop("snapshot", None)
    return {
        "id": f"audit-{row.id}",
        "type": kind,
        "experiment": row.entity_key if row.entity == "experiment" else None,
        "entity": row.entity,
        "at": entry["at"],
        "audit": entry,
    }


def enqueue_events(*, services: Services, now: datetime | None = None) -> int:
    """Turn the audit entries past the cursor into deliveries (idempotent by event id); the
    number enqueued. Without ``SPLITLAB_WEBHOOK_URL`` the cursor only moves on."""
    moment = now or datetime.now(UTC)
    configured = bool(services.settings.webhook_url)
    added = 0
    with services.sessions.begin() as session:
        state = read_value(session=session, name=CURSOR)
        if "audit_id" not in state:
            start = newest_audit_id(session=session)
            write_value(session=session, name=CURSOR, value={"audit_id": start}, now=moment)
            return 0
        cursor = int(state["audit_id"])
        while rows := audit_after(session=session, after_id=cursor, limit=BATCH):
            for row in rows:
                kind = event_type(row)
                if kind is None or not configured:
                    continue
                payload = event_payload(row, kind)
                added += enqueue(
                    session=session,
                    event_id=payload["id"],
                    event_type=kind,
                    payload=payload,
                    now=moment,
                )
            cursor = rows[-1].id
        write_value(session=session, name=CURSOR, value={"audit_id": cursor}, now=moment)
    return added


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    """The ``X-Splitlab-Signature`` value: ``sha256=`` HMAC-SHA256 of ``{timestamp}.{body}``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes,
    *,
    secret: str,
    timestamp: str,
    signature: str,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches (constant-time) and the timestamp is
    within ``tolerance_seconds`` of ``now``."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - stamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(body, secret=secret, timestamp=stamp), signature)


def retry_delay(attempt: int, *, base_seconds: float) -> float:
    """Seconds before the attempt after failed attempt ``attempt`` (1-based): ``base``,
    doubling each time, at most an hour."""
    return float(min(base_seconds * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


@dataclass
class Outcome:
    """One delivery attempt."""

    delivery_id: int
    event_id: str
    attempt: int
    delivered: bool
    error: str = ""


class WebhookSender:
    """Posts due deliveries; several senders (server processes) never post one delivery at
    the same time (each attempt is claimed by a conditional update first)."""

    def __init__(self, services: Services, *, transport: httpx.BaseTransport | None = None):
        self.services = services
        settings = services.settings
        self.url = settings.webhook_url
        secret = settings.webhook_secret
        self.secret = secret.get_secret_value() if secret else None
        self.timeout = settings.webhook_timeout_seconds
        self.max_attempts = settings.webhook_max_attempts
        self.base_seconds = settings.webhook_retry_seconds
        self._client = httpx.Client(timeout=self.timeout, transport=transport)
        self.stopping = threading.Event()
        """Set on shutdown: the round in progress ends after its current attempt."""

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def headers(self, body: bytes, *, event_id: str, kind: str) -> dict[str, str]:
        """The request headers: content type, event and delivery ids, and the signature."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "splitlab-webhooks",
            EVENT_HEADER: kind,
            DELIVERY_HEADER: event_id,
        }
        if self.secret:
            stamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = sign(body, secret=self.secret, timestamp=stamp)
        return headers

    def deliver_due(self, now: datetime | None = None) -> list[Outcome]:
        """Attempt every delivery due at ``now`` once; what happened to each."""
        if not self.url:
            return []
        moment = now or datetime.now(UTC)
        with self.services.sessions() as session:
            due = [
                (d.id, d.event_id, d.event_type, d.attempts, d.payload)
                for d in due_deliveries(session=session, now=moment)
            ]
        outcomes = []
        for delivery_id, event_id, kind, attempts, payload in due:
            if self.stopping.is_set():
                break
            with self.services.sessions.begin() as session:
                taken = claim(
                    session=session,
                    delivery_id=delivery_id,
                    attempts=attempts,
                    now=moment,
                    hold_seconds=self.timeout + 30,
                )
            if taken:
                outcomes.append(self._attempt(delivery_id, event_id, kind, attempts + 1, payload))
        return outcomes

    def _attempt(
        self, delivery_id: int, event_id: str, kind: str, attempt: int, payload: dict[str, Any]
    ) -> Outcome:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        error = ""
        try:
            response = self._client.post(
                self.url or "",
                content=body,
                headers=self.headers(body, event_id=event_id, kind=kind),
            )
            delivered = 200 <= response.status_code < 300
            if not delivered:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            delivered, error = False, f"{type(exc).__name__}: {exc}"
        finished = datetime.now(UTC)
        retry_at = None
        if not delivered and attempt < self.max_attempts:
            retry_at = finished + timedelta(
                seconds=retry_delay(attempt, base_seconds=self.base_seconds)
            )
        with self.services.sessions.begin() as session:
            record_attempt(
                session=session,
                delivery_id=delivery_id,
                delivered=delivered,
                error=error,
                retry_at=retry_at,
                now=finished,
            )
        if not delivered:
            log.warning("webhook %s attempt %d failed: %s", event_id, attempt, error)
        return Outcome(delivery_id, event_id, attempt, delivered, error)


POLL_SECONDS = 1.0
"""How often the server's sender looks for due deliveries."""


@contextlib.asynccontextmanager
async def webhook_worker(services: Services) -> AsyncIterator[WebhookSender | None]:
    """Deliver notifications in a worker thread for the lifetime of the block (nothing when
    ``SPLITLAB_WEBHOOK_URL`` is unset)."""
    if not services.settings.webhook_url:
        yield None
        return
    sender = WebhookSender(services)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(sender.deliver_due)
            except Exception:
                log.exception("webhook delivery round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)

    task = asyncio.create_task(loop())
    try:
        yield sender
    finally:
        stop.set()
        sender.stopping.set()
        try:
            await asyncio.wait_for(task, timeout=services.settings.webhook_timeout_seconds + 5)
        except TimeoutError:
            log.warning("webhooks: a delivery was still in flight at shutdown")
        sender.close()

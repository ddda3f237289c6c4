"""Webhooks: the outbox is filled from the audit log once per event, deliveries are signed,
retried with back-off against a real local receiver, and a dead or hanging receiver never
holds up a tick or a request — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from splitlab.decisions import webhooks
from splitlab.decisions.scheduler import Scheduler
from splitlab.decisions.webhooks import WebhookSender, enqueue_events, retry_delay, sign
from splitlab.domain import Status
from splitlab.services import Services
from splitlab.store import ramps
from splitlab.store.scheduler_state import write_value
from splitlab.store.tables import WebhookDeliveryRow
from tests.decisions.automation_helpers import make_experiment

SECRET = "whsec-test"
PLAN = [{"percent": 10, "hold_hours": 1}, {"percent": 100}]


class Receiver:
    """A real HTTP server on 127.0.0.1 answering with the queued statuses (then 200),
    optionally after a delay; it records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return {
        "webhook_url": receiver.url,
        "webhook_secret": SECRET,
        "webhook_retry_seconds": 10,
        "webhook_timeout_seconds": 0.5,
        "webhook_max_attempts": 3,
        "scheduler_seconds": 0,
    }


def _deliveries(services: Services) -> list[WebhookDeliveryRow]:
    from sqlalchemy import select

    with services.sessions() as session:
        rows = list(session.scalars(select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id)))
        session.expunge_all()
        return rows


def _ramp_events(services: Services) -> None:
    make_experiment(services, "promo", to=Status.READOUT)
    with services.sessions.begin() as session:
        ramps.create_ramp(
            session=session, key="promo", variant="treatment-a", steps=PLAN, actor="ed"
        )


def test_retry_delay_doubles_up_to_an_hour() -> None:
    assert [retry_delay(n, base_seconds=10) for n in range(1, 6)] == [10, 20, 40, 80, 160]
    assert retry_delay(12, base_seconds=10) == 3600


def test_signature_round_trip() -> None:
    body = b'{"id":"audit-1"}'
    header = sign(body, secret=SECRET, timestamp=1_700_000_000)
    # openssl dgst -sha256 -hmac whsec-test <<< '1700000000.{"id":"audit-1"}' (no newline)
    assert header == "sha256=b65025cc297d42f5bd47b44be5b92c593b79d5dd9f6ad97cf09f249d20f4f8b8"
    check = webhooks.verify_signature
    assert check(body, secret=SECRET, timestamp="1700000000", signature=header, now=1_700_000_100)
    assert not check(
        body + b" ", secret=SECRET, timestamp="1700000000", signature=header, now=1_700_000_100
    )
    assert not check(
        body, secret="other", timestamp="1700000000", signature=header, now=1_700_000_100
    )
    assert not check(
        body, secret=SECRET, timestamp="1700000001", signature=header, now=1_700_000_100
    )
    assert not check(
        body, secret=SECRET, timestamp="1700000000", signature=header, now=1_700_000_400
    )
    assert not check(body, secret=SECRET, timestamp="soon", signature=header)


def test_the_outbox_takes_each_event_once(services: Services) -> None:
    make_experiment(services, "before", to=Status.RUNNING)
    assert enqueue_events(services=services) == 0  # the cursor starts at the newest entry
    _ramp_events(services)
    assert enqueue_events(services=services) == 2
    assert [d.event_type for d in _deliveries(services)] == ["ramp.created", "ramp.step"]
    assert enqueue_events(services=services) == 0
    # a cursor set back (a restore, a bug) enqueues nothing twice: event ids are unique
    with services.sessions.begin() as session:
        write_value(session=session, name=webhooks.CURSOR, value={"audit_id": 0})
    assert enqueue_events(services=services) == 0
    assert len(_deliveries(services)) == 2
    payload = _deliveries(services)[1].payload
    assert payload["type"] == "ramp.step" and payload["experiment"] == "promo"
    assert payload["audit"]["changes"]["percent"] == 10
    assert "snapshot" not in payload["audit"]


def test_event_types_of_other_helpers_actions(services: Services) -> None:
    from splitlab.store.audit import write_audit

    enqueue_events(services=services)
    with services.sessions.begin() as session:
        for action, actor in [
            ("recommendation", "engine"),
            ("decision", "ed"),
            ("decision_approved", "rita"),
            ("transition", "scheduler"),
            ("transition", "ed"),
            ("note", "ed"),
            ("auto_stop", "scheduler"),
        ]:
            write_audit(
                session=session, entity="experiment", entity_key="k", action=action, actor=actor
            )
    assert enqueue_events(services=services) == 5
    assert [d.event_type for d in _deliveries(services)] == [
        "recommendation.changed",
        "decision.recorded",
        "decision.approved",
        "experiment.transition",
        "experiment.auto_stopped",
    ]


def test_delivery_is_signed(services: Services, receiver: Receiver) -> None:
    enqueue_events(services=services)
    _ramp_events(services)
    enqueue_events(services=services)
    sender = WebhookSender(services)
    try:
        outcomes = sender.deliver_due()
    finally:
        sender.close()
    assert [o.delivered for o in outcomes] == [True, True]
    assert all(d.status == "delivered" and d.attempts == 1 for d in _deliveries(services))
    first = receiver.requests[0]
    headers = {k.lower(): v for k, v in first["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-splitlab-event"] == "ramp.created"
    assert webhooks.verify_signature(
        first["body"],
        secret=SECRET,
        timestamp=headers["x-splitlab-timestamp"],
        signature=headers["x-splitlab-signature"],
    )
    event = json.loads(first["body"])
    assert event["id"] == headers["x-splitlab-delivery"] and event["experiment"] == "promo"


def test_retry_with_back_off_until_delivered(services: Services, receiver: Receiver) -> None:
    enqueue_events(services=services)
    make_experiment(services, "promo", to=Status.READOUT)
    with services.sessions.begin() as session:
        from splitlab.store.audit import write_audit

        write_audit(
            session=session,
            entity="experiment",
            entity_key="promo",
            action="auto_stop",
            actor="scheduler",
        )
    enqueue_events(services=services)
    receiver.statuses = [500, 503]
    sender = WebhookSender(services)
    try:
        t0 = datetime.now(UTC)
        assert [o.error for o in sender.deliver_due(t0)] == ["HTTP 500"]
        (row,) = _deliveries(services)
        retry_at = row.next_attempt_at.replace(tzinfo=UTC)
        assert timedelta(seconds=9.5) < retry_at - t0 < timedelta(seconds=12)
        assert sender.deliver_due(t0 + timedelta(seconds=9)) == []  # not yet due
        t1 = t0 + timedelta(seconds=12)
        assert [o.error for o in sender.deliver_due(t1)] == ["HTTP 503"]
        (row,) = _deliveries(services)
        assert (
            timedelta(seconds=19.5)
            < row.next_attempt_at.replace(tzinfo=UTC) - t0
            < timedelta(seconds=22)
        )
        assert sender.deliver_due(t0 + timedelta(seconds=19)) == []  # 20 s after the 2nd
        assert [o.delivered for o in sender.deliver_due(t0 + timedelta(seconds=23))] == [True]
    finally:
        sender.close()
    (row,) = _deliveries(services)
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, "")
    assert len(receiver.requests) == 3
    assert len({r["body"] for r in receiver.requests}) == 1  # the same event each time


def test_out_of_attempts_is_failed(services: Services, receiver: Receiver) -> None:
    enqueue_events(services=services)
    make_experiment(services, "promo", to=Status.READOUT)
    with services.sessions.begin() as session:
        from splitlab.store.audit import write_audit

        write_audit(
            session=session,
            entity="experiment",
            entity_key="promo",
            action="auto_stop",
            actor="scheduler",
        )
    enqueue_events(services=services)
    receiver.statuses = [500] * 10
    sender = WebhookSender(services)
    later = datetime.now(UTC)
    try:
        for _ in range(5):
            later += timedelta(hours=2)
            sender.deliver_due(later)
    finally:
        sender.close()
    (row,) = _deliveries(services)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 500")
    assert len(receiver.requests) == 3


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there now


def test_a_dead_or_hanging_receiver_never_blocks_a_tick(
    services: Services, receiver: Receiver
) -> None:
    scheduler = Scheduler(services, owner="one", auto_stop=False)
    scheduler.tick()
    _ramp_events(services)
    receiver.delay = 3.0  # far past the 0.5 s timeout
    started = time.perf_counter()
    report = scheduler.tick()
    assert report.notifications == 2
    assert time.perf_counter() - started < 1.0  # a tick only writes the outbox
    sender = WebhookSender(services)
    try:
        started = time.perf_counter()
        outcomes = sender.deliver_due()
        took = time.perf_counter() - started
    finally:
        sender.close()
    assert [o.delivered for o in outcomes] == [False, False]
    assert all("Timeout" in o.error for o in outcomes)
    assert took < 2 * 0.5 + 1.0  # each attempt bounded by the timeout
    dead = Services.open(services.settings.model_copy(update={"webhook_url": _dead_url()}))
    sender = WebhookSender(dead)
    try:
        later = datetime.now(UTC) + timedelta(minutes=5)
        started = time.perf_counter()
        outcomes = sender.deliver_due(later)
        assert time.perf_counter() - started < 1.0
    finally:
        sender.close()
        dead.close()
    assert [o.delivered for o in outcomes] == [False, False]
    assert all("ConnectError" in o.error for o in outcomes)


def test_the_server_delivers_in_the_background(services: Services, receiver: Receiver) -> None:
    """The app's lifespan runs the scheduler and the sender: a scheduled experiment due now
    is started by the server and its start reaches the receiver, while requests answer."""
    from fastapi.testclient import TestClient

    from splitlab.app import create_app

    settings = services.settings.model_copy(update={"scheduler_seconds": 0.2})
    served = Services.open(settings)
    make_experiment(
        served, "soon", to=Status.SCHEDULED, start_at=datetime.now(UTC) + timedelta(seconds=1)
    )
    Scheduler(served, owner="cursor").tick(now=datetime.now(UTC) - timedelta(days=1))
    Scheduler(served, owner="cursor").release()
    receiver.delay = 0
    with TestClient(create_app(services=served)) as client:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not receiver.requests:
            assert client.get("/healthz").status_code == 200
            time.sleep(0.1)
    assert receiver.requests, "no notification reached the receiver"
    event = json.loads(receiver.requests[0]["body"])
    assert (event["type"], event["experiment"]) == ("experiment.transition", "soon")
    assert event["audit"]["to"] == "running" and event["audit"]["actor"] == "scheduler"

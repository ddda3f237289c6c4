"""The SDK against a real server: uvicorn on a free loopback port, in a thread of this process
(so the test can read the warehouse), with a flaky transport injected where needed."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from splitlab.api.caches import Allocations
from splitlab.app import create_app
from splitlab.client import Client
from splitlab.domain import Role, Scope
from splitlab.services import Services
from tests.api.helpers import create_running


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite + DuckDB only: the subject here is not the stores."""
    return f"sqlite:///{tmp_path / 'app.db'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(services: Services) -> Iterator[str]:
    services.allocations = Allocations(services, check_interval=0)
    port = free_port()
    config = uvicorn.Config(
        create_app(services=services), host="127.0.0.1", port=port, log_level="warning"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server) as client:
        yield client


@pytest.fixture
def ingest_key(keys: Any) -> str:
    return keys.headers("sdk", Role.EDITOR, Scope.INGEST)["Authorization"][7:]


@pytest.fixture
def running(http: httpx.Client, editor: dict, reviewer: dict) -> None:
    create_running(http, editor, reviewer)  # type: ignore[arg-type]


def counts(services: Services) -> tuple[int, int, int]:
    mark = services.warehouse.watermark()
    return mark.exposures, mark.events, mark.conflicts


class Flaky(httpx.BaseTransport):
    """Fails the first ``failures`` POST /api/events requests, cycling through the three
    ways a request fails: no connection, a 503, and the worst one — the server stored the
    batch but the response was lost."""

    def __init__(self, failures: int, status: int = 503) -> None:
        self.inner = httpx.HTTPTransport()
        self.failures = failures
        self.status = status
        self.calls: list[tuple[str, int | str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/events" and self.failures > 0:
            mode = self.failures % 3
            self.failures -= 1
            if mode == 0:
                self.calls.append((path, "connect"))
                raise httpx.ConnectError("refused", request=request)
            if mode == 1:
                self.calls.append((path, self.status))
                return httpx.Response(self.status, request=request)
            self.inner.handle_request(request).close()  # delivered, answer lost
            self.calls.append((path, "lost"))
            raise httpx.ReadError("connection reset", request=request)
        response = self.inner.handle_request(request)
        self.calls.append((path, response.status_code))
        return response


def test_close_delivers_everything(
    server: str, services: Services, ingest_key: str, running: None
) -> None:
    client = Client(server, ingest_key, flush_interval=60, batch_size=100)
    variants = [client.assign("checkout", f"u{i}", {"country": "NL"}).variant for i in range(250)]
    assert set(variants) == {"control", "one-page"}
    for i in range(250):
        client.assign("checkout", f"u{i}")  # exposure already queued: not queued again
        client.track(f"u{i}", "purchase", value=i, experiment="checkout")
    assert client.stats().queued == 500 and counts(services) == (0, 0, 0)
    assert client.close() is True
    assert counts(services) == (250, 250, 0)
    stats = client.stats()
    assert (stats.queued, stats.sent, stats.duplicates, stats.dropped) == (0, 500, 0, 0)
    attributes = services.warehouse.query(
        "SELECT DISTINCT CAST(attributes AS VARCHAR) FROM exposures"
    )
    assert attributes == [('{"country":"NL"}',)]
    with pytest.raises(RuntimeError):
        client.track("u1", "late")


def test_each_event_exactly_once_through_a_flaky_network(
    server: str, services: Services, ingest_key: str, running: None
) -> None:
    flaky = Flaky(failures=6)
    client = Client(
        server, ingest_key, flush_interval=0.05, batch_size=50, retry_backoff=0.01,
        transport=flaky,
    )  # fmt: skip
    for i in range(200):
        client.assign("checkout", f"u{i}")
        client.track(f"u{i}", "purchase", value=1.0)
    deadline = time.monotonic() + 20
    while client.stats().queued and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.close() is True
    assert counts(services) == (200, 200, 0)
    stats = client.stats()
    assert stats.retries == 6 and stats.dropped == 0 and stats.failed == 0
    assert stats.sent == 400 - stats.duplicates  # the lost answers' batches came back as dups
    assert stats.duplicates > 0
    assert sum(1 for _, outcome in flaky.calls if outcome == "lost") == 2


def test_client_errors_are_not_retried(
    server: str, services: Services, ingest_key: str, running: None
) -> None:
    flaky = Flaky(failures=1, status=400)  # one batch refused as a whole: dropped, not retried
    client = Client(server, ingest_key, flush_interval=60, transport=flaky)
    client.track("u1", "purchase")
    assert client.flush(timeout=5) is True
    client.track("u2", "purchase", experiment="no-such-experiment")  # refused item by item
    client.track("u3", "purchase")
    assert client.close() is True
    stats = client.stats()
    assert (stats.failed, stats.rejected, stats.sent, stats.retries) == (1, 1, 1, 0)
    assert [c for c in flaky.calls if c[0] == "/api/events"] == [
        ("/api/events", 400),
        ("/api/events", 200),
    ]
    assert counts(services) == (0, 1, 0)


def test_full_queue_drops_the_oldest_and_close_gives_up_at_its_timeout(
    server: str, ingest_key: str, running: None
) -> None:
    client = Client(server, ingest_key, flush_interval=60, max_queue=10, retry_backoff=0.05)
    client._http.close()
    client._http = httpx.Client(base_url="http://127.0.0.1:9", timeout=0.2)  # nothing listens
    ids = [client.track(f"u{i}", "purchase") for i in range(15)]
    assert [item["eventId"] for item in client._queue] == ids[5:]
    started = time.monotonic()
    assert client.close(timeout=0.5) is False
    assert time.monotonic() - started < 3
    stats = client.stats()
    assert (stats.dropped, stats.queued, stats.sent) == (5, 10, 0)


def test_local_evaluation_equals_the_api_and_follows_config_changes(
    server: str, http: httpx.Client, editor: dict, ingest_key: str, running: None
) -> None:
    headers = {"Authorization": f"Bearer {ingest_key}"}
    flaky = Flaky(failures=0)  # just records the calls
    client = Client(server, ingest_key, flush_interval=60, transport=flaky)
    for i in range(100):
        body = {"experiment": "checkout", "unitId": f"user-{i}", "record": False}
        remote = http.post("/api/assign", json=body, headers=headers).json()
        local = client.assign("checkout", f"user-{i}")
        assert (local.variant, local.payload, local.in_experiment, local.reason) == (
            remote["variant"], remote["payload"], remote["inExperiment"], remote["reason"]
        )  # fmt: skip
    assert client.assign("unknown", "u1").reason == "inactive"

    assert client.refresh() is False  # unchanged: answered 304
    assert flaky.calls[-1] == ("/api/sdk/config", 304)
    variants = [
        {"key": "control", "weight": 0.0, "is_control": True},
        {"key": "one-page", "weight": 1.0, "payload": {"layout": "single"}},
    ]
    patched = http.patch("/api/experiments/checkout", json={"variants": variants}, headers=editor)
    assert patched.status_code == 200
    assert client.refresh() is True
    assert client.experiments["checkout"].weights == (0.0, 1.0)
    assert client.assign("checkout", "brand-new").variant == "one-page"
    kept = [client.assign("checkout", f"user-{i}") for i in range(100)]
    assert any(a.variant == "control" and a.reason == "sticky" for a in kept)
    client.close()

"""kill -9 the server mid-stream: acknowledged events are there once, no batch half-written."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from splitlab.warehouse import Warehouse
from tests.warehouse import server

BATCH = 200


def batch(number: int) -> list[dict[str, object]]:
    return [
        {
            "experimentKey": "checkout",
            "userKey": f"u{i % 997}",
            "eventType": "purchase",
            "value": 1.0,
            "eventId": f"b{number}-{i}",
        }
        for i in range(BATCH)
    ]


def test_kill_9_mid_stream_keeps_every_acknowledged_event_once(
    warehouse_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    postgres = warehouse_url.startswith("postgres")
    database_url = warehouse_url if postgres else f"sqlite:///{tmp_path / 'app.db'}"
    server.init_store(database_url)
    env = server.server_env(home, database_url, warehouse_url)
    port = server.free_port()
    base = f"http://127.0.0.1:{port}"
    process = server.start(env, port)
    try:
        server.make_running(base)
        acknowledged: list[int] = []
        sent: list[int] = []
        lock = threading.Lock()

        def sender(worker: int) -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                for number in range(worker, 10_000, 4):
                    with lock:
                        sent.append(number)
                    try:
                        response = http.post("/api/events", json={"events": batch(number)})
                    except httpx.HTTPError:
                        return  # the server died under us
                    if response.status_code != 200:
                        return
                    assert response.json()["accepted"] == BATCH
                    with lock:
                        acknowledged.append(number)

        threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        for thread in threads:
            thread.join(10)
        assert len(acknowledged) >= 40
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    def present() -> dict[int, int]:
        warehouse = Warehouse.open(warehouse_url)
        try:
            rows = warehouse.query(
                "SELECT split_part(event_id, '-', 1), count(*), count(DISTINCT event_id) "
                "FROM events GROUP BY 1"
            )
        finally:
            warehouse.close()
        assert all(total == distinct for _, total, distinct in rows)
        return {int(prefix[1:]): int(total) for prefix, total, _ in rows}

    stored = present()
    assert set(acknowledged) <= set(stored), "an acknowledged batch was lost"
    assert set(stored) <= set(sent)
    assert all(n == BATCH for n in stored.values()), "a batch was half-written"

    # restart: the server opens the same warehouse, retries are duplicates
    process = server.start(env, port)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            retry = http.post("/api/events", json={"events": batch(acknowledged[0])}).json()
            assert (retry["accepted"], retry["duplicates"]) == (0, BATCH)
            fresh = http.post("/api/events", json={"events": batch(99_999)}).json()
            assert fresh["accepted"] == BATCH
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert present() == stored | {99_999: BATCH}


pytestmark = pytest.mark.timeout(120)

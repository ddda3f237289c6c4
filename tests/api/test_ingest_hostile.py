"""Hostile input mixed into valid traffic: each hostile request is a 4xx of its own, every
valid one is stored exactly once — on SQLite + DuckDB and on PostgreSQL."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from splitlab.services import Services
from splitlab.warehouse import Warehouse
from tests.api.test_ingest import (  # noqa: F401 - fixtures: both backends, a running experiment
    TRACK,
    counts,
    ingest,
    running,
    settings,
)
from tests.warehouse import server
from tests.warehouse.test_hostile_items import HOSTILE

WIRE_HOSTILE = [(fields, field) for fields, field in HOSTILE if fields != {"props": {"big": 2**70}}]
"""Hostile as sent over HTTP (orjson reads a 2**70 literal as a float: valid ``props``)."""
HUGE = [b"1e400", b"-1e400", b"-1e30", b"-1e15", b"1.7976931348623157e308"]


def body(item: Any) -> bytes:
    """JSON as a hostile client may send it: NaN, Infinity, unpaired surrogates, huge ints."""
    return json.dumps(item, allow_nan=True).encode()


def is_error_shape(response: httpx.Response) -> bool:
    error = response.json().get("error")
    return isinstance(error, dict) and {"code", "message"} <= error.keys()


# ------------------------------------------------------------ in process, one at a time


@pytest.mark.parametrize(("fields", "field"), WIRE_HOSTILE, ids=[repr(f) for f, _ in WIRE_HOSTILE])
def test_a_hostile_track_is_a_422_and_writes_nothing(
    client: TestClient,
    services: Services,
    ingest: dict[str, str],  # noqa: F811
    running: None,  # noqa: F811
    fields: dict[str, Any],
    field: str,
) -> None:
    item = TRACK | {"eventType": "purchase", "eventId": "hostile"} | fields
    response = client.post("/api/track", content=body(item), headers=ingest)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == [field]
    assert counts(services) == (0, 0, 0)


@pytest.mark.parametrize("raw", HUGE)
def test_huge_numbers_in_the_body_are_422s(
    client: TestClient,
    services: Services,
    ingest: dict[str, str],  # noqa: F811
    running: None,  # noqa: F811
    raw: bytes,
) -> None:
    """``-1e15`` used to be stored and then answered 500: a verdict must come before the write."""
    for name in (b"occurredAt", b"value"):
        item = b'{"experimentKey":"checkout","userKey":"u1","eventType":"buy","%s":%s}'
        response = client.post("/api/track", content=item % (name, raw), headers=ingest)
        if name == b"value" and raw == b"-1e15":
            assert response.status_code == 200, response.text  # the limit itself
            continue
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["loc"] == [name.decode()]
    assert counts(services) == (0, int(raw == b"-1e15"), 0)


def test_a_batch_with_one_hostile_item_stores_the_valid_ones(
    client: TestClient,
    services: Services,
    ingest: dict[str, str],  # noqa: F811
    running: None,  # noqa: F811
) -> None:
    items = [TRACK | {"eventType": "purchase", "eventId": f"ok-{i}"} for i in range(3)]
    items.insert(2, TRACK | {"eventType": "purchase", "eventId": "bad", "occurredAt": -1e30})
    response = client.post("/api/events", content=body({"events": items}), headers=ingest)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (3, 1)
    assert result["results"][2]["status"] == "rejected"
    assert result["results"][2]["error"]["field"] == "occurredAt"
    assert counts(services) == (0, 3, 0)


# ------------------------------------------------------------ a real server, many clients


class LiveServer:
    """A ``uvicorn`` process with a running experiment ``checkout`` (variants control, b)."""

    def __init__(self, home: Path, database_url: str, warehouse_url: str) -> None:
        self.warehouse_url = warehouse_url
        server.init_store(database_url)
        port = server.free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.process = server.start(server.server_env(home, database_url, warehouse_url), port)

    def stop(self) -> None:
        """Stop it (the DuckDB file is the server's until then)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    if request.param == "duckdb":
        database_url = f"sqlite:///{tmp_path / 'app.db'}"
        warehouse_url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        database_url = warehouse_url = request.getfixturevalue("pg_schema_url")
    live = LiveServer(tmp_path / "home", database_url, warehouse_url)
    try:
        server.make_running(live.base)
        yield live
    finally:
        live.stop()


CLIENTS = 12
VALID_PER_CLIENT = 40
HOSTILE_PER_CLIENT = 8
BATCHES_PER_CLIENT = 2


def valid_item(client: int, number: int) -> dict[str, Any]:
    """A valid event, or every third one an exposure of a new unit; ids are unique."""
    item = {
        "experimentKey": "checkout",
        "variantKey": "b" if number % 2 else "control",
        "userKey": f"c{client}-u{number}",
        "eventType": "exposure" if number % 3 == 0 else "purchase",
        "eventId": f"c{client}-n{number}",
    }
    if number % 3:
        item |= {"value": number * 1.5, "props": {"n": number, "note": "fine\ttab"}}
    return item


def test_hostile_clients_never_fail_valid_ones(live_server: LiveServer) -> None:
    base = live_server.base
    rng = random.Random(11)
    plans: list[list[tuple[str, bytes, list[bool]]]] = []
    for client in range(CLIENTS):
        plan: list[tuple[str, bytes, list[bool]]] = []
        numbers = iter(range(10_000))
        for _ in range(VALID_PER_CLIENT):
            plan.append(("/api/track", body(valid_item(client, next(numbers))), [True]))
        for _ in range(HOSTILE_PER_CLIENT):
            fields, _ = rng.choice(WIRE_HOSTILE)
            item = valid_item(client, next(numbers)) | fields
            plan.append(("/api/track", body(item), [False]))
        for _ in range(BATCHES_PER_CLIENT):
            batch = [valid_item(client, next(numbers)) for _ in range(6)]
            kinds = [True] * 6
            for _ in range(3):
                fields, _ = rng.choice(WIRE_HOSTILE)
                at = rng.randrange(len(batch) + 1)
                batch.insert(at, valid_item(client, next(numbers)) | fields)
                kinds.insert(at, False)
            plan.append(("/api/events", body({"events": batch}), kinds))
        rng.shuffle(plan)
        plans.append(plan)

    acknowledged: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()

    def run(plan: list[tuple[str, bytes, list[bool]]]) -> None:
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=base, timeout=30) as http:
            for path, content, kinds in plan:
                response = http.post(path, content=content, headers=headers)
                with lock:
                    check(path, content, kinds, response)

    def check(path: str, content: bytes, kinds: list[bool], response: httpx.Response) -> None:
        if path == "/api/track":
            if kinds[0] and response.status_code != 200:
                problems.append(f"valid track got {response.status_code}: {response.text}")
            elif kinds[0]:
                acknowledged.append(response.json()["eventId"])
            elif not (400 <= response.status_code < 500 and is_error_shape(response)):
                problems.append(f"hostile track {content[:120]!r} got {response.status_code}")
            return
        if response.status_code != 200:
            problems.append(f"batch got {response.status_code}: {response.text}")
            return
        results = response.json()["results"]
        for valid, result in zip(kinds, results, strict=True):
            if valid and result["status"] != "accepted":
                problems.append(f"valid batch item {result}")
            elif valid:
                acknowledged.append(result["eventId"])
            elif result["status"] != "rejected" or not 400 <= result["error"]["status"] < 500:
                problems.append(f"hostile batch item {result}")

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not problems, problems[:5]
    expected = CLIENTS * (VALID_PER_CLIENT + 6 * BATCHES_PER_CLIENT)
    assert len(acknowledged) == len(set(acknowledged)) == expected

    live_server.stop()
    check_stored(live_server.warehouse_url, acknowledged)


def check_stored(warehouse_url: str, acknowledged: list[str]) -> None:
    warehouse = Warehouse.open(warehouse_url, read_only=True)
    try:
        rows = warehouse.query(
            "SELECT event_id, count(*) FROM ("
            "SELECT event_id FROM events UNION ALL SELECT event_id FROM exposures) f "
            "GROUP BY event_id"
        )
    finally:
        warehouse.close()
    stored = {str(event_id): int(n) for event_id, n in rows}
    assert stored == dict.fromkeys(acknowledged, 1)  # each acknowledged once, nothing else

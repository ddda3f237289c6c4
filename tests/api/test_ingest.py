"""/api/track and /api/events over HTTP: app store + warehouse on SQLite+DuckDB and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.config import Settings
from splitlab.domain import Role, Scope
from splitlab.services import Services
from splitlab.store.users import revoke_api_key
from tests.api.helpers import create_running, move

TRACK = {"experimentKey": "checkout", "variantKey": "control", "userKey": "u1"}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Overrides the shared fixture: the warehouse follows the app store's backend."""
    common: dict[str, Any] = {
        "home": tmp_path / "home",
        "secret_key": "test-secret",
        "auth": "on",
        "ingest_cache_seconds": 0,
        "max_body_bytes": 256 * 1024,
        "ingest_max_batch_items": 500,
    }
    if request.param == "duckdb":
        return Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", **common)
    url = request.getfixturevalue("pg_schema_url")
    return Settings(database_url=url, warehouse_url=url, **common)


@pytest.fixture
def ingest(keys: Any) -> dict[str, str]:
    return keys.headers("collector", Role.EDITOR, Scope.INGEST)


@pytest.fixture
def running(client: TestClient, editor: dict[str, str], reviewer: dict[str, str]) -> None:
    create_running(client, editor, reviewer)


def track(client: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    body = {k: v for k, v in (TRACK | {"eventType": "purchase"} | fields).items() if v is not ...}
    return client.post("/api/track", json=body, headers=headers)


def error_field(response: Any) -> str:
    return str(response.json()["error"]["details"][0]["loc"][0])


def counts(services: Services) -> tuple[int, int, int]:
    mark = services.warehouse.watermark()
    return mark.exposures, mark.events, mark.conflicts


def test_track_exposure_and_event_with_duplicate_flag(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    first = track(client, ingest, eventType="exposure", props={"country": "NL"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["success"] is True and body["duplicate"] is False
    assert body["occurredAt"].endswith("Z") and len(body["eventId"]) == 32
    again = track(client, ingest, eventType="exposure").json()
    assert again["duplicate"] is True and again["eventId"] == body["eventId"]

    conversion = track(client, ingest, value=19.99, occurredAt=datetime.now(UTC).isoformat())
    assert conversion.json()["duplicate"] is False
    assert track(client, ingest, value=5).json()["duplicate"] is True  # same exp, user, type
    with_id = track(client, ingest, eventId="order-1", value=5).json()
    assert (with_id["eventId"], with_id["duplicate"]) == ("order-1", False)
    assert track(client, ingest, eventId="order-1").json()["duplicate"] is True
    assert counts(services) == (1, 2, 0)


def test_exposure_to_a_second_variant_is_recorded_as_conflict(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    track(client, ingest, eventType="exposure")
    other = track(client, ingest, eventType="exposure", variantKey="one-page").json()
    assert other["conflict"] is True
    assert counts(services) == (1, 0, 1)


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        ({"experimentKey": "nope"}, "experimentKey", 422),
        ({"variantKey": "treatment"}, "variantKey", 422),
        ({"userKey": ...}, "userKey", 422),
        ({"userKey": ""}, "userKey", 422),
        ({"value": "ten"}, "value", 422),
        ({"occurredAt": "2999-01-01T00:00:00Z"}, "occurredAt", 422),
        ({"occurredAt": "2000-01-01T00:00:00Z"}, "occurredAt", 422),
        ({"props": {"x": "y" * 9000}}, "props", 422),
    ],
)
def test_track_bad_input_names_the_field_and_writes_nothing(
    client: TestClient,
    services: Services,
    ingest: dict,
    running: None,
    fields: dict[str, Any],
    field: str,
    status: int,
) -> None:
    response = track(client, ingest, **fields)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert error_field(response) == field
    assert counts(services) == (0, 0, 0)


def test_track_nan_and_infinity_are_422_on_value(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"experimentKey":"checkout","userKey":"u1","eventType":"buy","value":' + literal
        response = client.post("/api/track", content=body + b"}", headers=ingest)
        assert response.status_code == 422 and error_field(response) == "value"
    assert counts(services) == (0, 0, 0)


def test_malformed_json_is_400_and_oversized_body_is_413(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    broken = client.post("/api/track", content=b'{"userKey": ', headers=ingest)
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "bad_request"
    big = client.post("/api/events", content=b" " * (300 * 1024), headers=ingest)
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
    too_many = {"events": [TRACK | {"eventType": "x", "eventId": str(i)} for i in range(501)]}
    assert client.post("/api/events", json=too_many, headers=ingest).status_code == 413
    assert counts(services) == (0, 0, 0)


def test_not_running_experiment_is_409(
    client: TestClient, services: Services, ingest: dict, editor: dict, reviewer: dict
) -> None:
    create_running(client, editor, reviewer)
    move(client, "checkout", "stopped", editor)
    response = track(client, ingest, eventType="exposure")
    assert response.status_code == 409
    assert error_field(response) == "experimentKey"
    assert counts(services) == (0, 0, 0)


def test_ingest_needs_an_ingest_scoped_key(client: TestClient, keys: Any, running: None) -> None:
    assert track(client, {}).status_code == 401
    reader = keys.headers("reader", Role.EDITOR, Scope.READ)
    assert track(client, reader).status_code == 403
    viewer = keys.headers("viewer", Role.VIEWER, Scope.INGEST)
    assert track(client, viewer).status_code == 403


def test_a_wrong_or_revoked_key_is_401_and_writes_nothing(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    """The key cache (``api.caches``) refuses what the store refuses."""
    assert track(client, {"Authorization": "Bearer sl_nope_nope"}).status_code == 401
    assert track(client, ingest).status_code == 200
    prefix = ingest["Authorization"].split("_")[1]
    with services.sessions.begin() as session:
        revoke_api_key(session=session, prefix=prefix, actor="owner")
    response = track(client, ingest, userKey="u2")
    assert response.status_code == 401
    assert counts(services) == (0, 1, 0)


def test_batch_partial_acceptance_and_idempotent_retry(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    now = datetime.now(UTC)
    items = [
        TRACK | {"eventType": "exposure"},
        TRACK | {"eventType": "purchase", "value": 10, "eventId": "o-1"},
        TRACK | {"eventType": "purchase", "value": "x", "eventId": "o-2"},
        TRACK | {"eventType": "purchase", "variantKey": "zzz", "eventId": "o-3"},
        TRACK | {"eventType": "purchase", "value": 3, "eventId": "o-1"},  # in-batch duplicate
        {
            "experimentKey": "checkout",
            "userKey": "u2",
            "eventType": "purchase",
            "occurredAt": (now + timedelta(hours=1)).isoformat(),
            "eventId": "o-4",
        },
        "not an object",
    ]
    response = client.post("/api/events", json={"events": items}, headers=ingest)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 4)
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
        "rejected",
        "rejected",
    ]
    assert [r["index"] for r in body["results"]] == list(range(7))
    assert body["results"][2]["error"]["field"] == "value"
    assert body["results"][3]["error"]["field"] == "variantKey"
    assert body["results"][5]["error"]["field"] == "occurredAt"
    assert body["results"][2]["eventId"] == "o-2"

    retry = client.post("/api/events", json={"events": items}, headers=ingest).json()
    assert (retry["accepted"], retry["duplicates"], retry["rejected"]) == (0, 3, 4)
    assert counts(services) == (1, 1, 0)


def test_batch_body_must_hold_an_events_array(
    client: TestClient, ingest: dict, running: None
) -> None:
    response = client.post("/api/events", json={"items": []}, headers=ingest)
    assert response.status_code == 422 and error_field(response) == "events"


def test_concurrent_clients_sending_overlapping_batches_store_each_id_once(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    errors: list[str] = []
    accepted: list[int] = []

    def sender(c: int) -> None:
        for round_ in range(3):
            start = c * 40 + round_ * 40
            batch = [
                {
                    "experimentKey": "checkout",
                    "userKey": f"u{i}",
                    "eventType": "click",
                    "eventId": f"id-{i}",
                }
                for i in range(start, start + 120)
            ]
            response = client.post("/api/events", json={"events": batch}, headers=ingest)
            if response.status_code != 200:
                errors.append(response.text)
            else:
                accepted.append(response.json()["accepted"])

    threads = [threading.Thread(target=sender, args=(c,)) for c in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    distinct = len({c * 40 + r * 40 + k for c in range(8) for r in range(3) for k in range(120)})
    assert counts(services)[1] == distinct == sum(accepted)


def test_openapi_documents_the_ingest_bodies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    track_body = paths["/api/track"]["post"]["requestBody"]["content"]["application/json"]
    assert {"userKey", "eventType"} <= set(track_body["schema"]["required"])
    assert "experimentKey" in track_body["schema"]["properties"]
    batch_body = paths["/api/events"]["post"]["requestBody"]["content"]["application/json"]
    assert batch_body["schema"]["properties"]["events"]["items"]["required"] == [
        "userKey",
        "eventType",
    ]


def test_errors_from_the_raw_endpoints_keep_the_api_error_shape(
    client: TestClient, ingest: dict, running: None
) -> None:
    unauthenticated = client.post("/api/track", json=TRACK)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert unauthenticated.json()["error"]["code"] == "unauthenticated"
    wrong_method = client.get("/api/track", headers=ingest)
    assert wrong_method.status_code == 405


def test_a_client_gone_before_its_body_arrived_gets_no_response_and_no_error() -> None:
    from splitlab.api.ingest import RawEndpoint

    async def handler(request: Any) -> dict[str, Any]:
        await request.body()
        raise AssertionError("the body of a disconnected client was read")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/track", "headers": []}
    asyncio.run(RawEndpoint(handler)(scope, receive, send))
    assert sent == []


def test_track_is_served_ahead_of_the_middleware_and_still_refuses_big_bodies(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    declared = client.post("/api/track", content=b" " * (300 * 1024), headers=ingest)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        for _ in range(300):
            yield b" " * 1024

    streamed = client.post("/api/track", content=chunks(), headers=ingest)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert client.get("/api/track").status_code == 405
    assert counts(services) == (0, 0, 0)

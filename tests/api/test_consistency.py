"""Right after a change, the hot paths see it — with their caches on (ttl 30 s here, so only
invalidation can explain a change seen at once): on this server at once, on another server
process (a second Services and app over the same store) within its ttl."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.api.caches import allocations_of
from splitlab.app import create_app
from splitlab.domain import Role, Scope
from splitlab.services import Services
from splitlab.store.users import set_active
from tests.api.helpers import create_running, move
from tests.conftest import Keys

TTL = 30.0
OTHER_TTL = 0.3


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ingest_cache_seconds": TTL, "session_cache_seconds": TTL}


@pytest.fixture
def ingest(keys: Keys) -> dict[str, str]:
    return keys.headers("collector", Role.EDITOR, Scope.INGEST)


@pytest.fixture
def other(services: Services) -> Iterator[TestClient]:
    """A second server process over the same app store, with a short ttl."""
    settings = services.settings.model_copy(
        update={
            "home": services.settings.home / "other",
            "ingest_cache_seconds": OTHER_TTL,
            "session_cache_seconds": OTHER_TTL,
        }
    )
    with TestClient(create_app(services=Services.open(settings))) as client:
        yield client


def track(client: TestClient, headers: dict[str, str], user: str = "u-1") -> Any:
    body = {
        "experimentKey": "checkout",
        "variantKey": "control",
        "userKey": user,
        "eventType": "purchase",
    }
    return client.post("/api/track", json=body, headers=headers)


def assign(client: TestClient, headers: dict[str, str], unit: str = "u-1") -> Any:
    return client.post(
        "/api/assign", json={"experiment": "checkout", "unitId": unit}, headers=headers
    )


def sdk_keys(client: TestClient, headers: dict[str, str]) -> set[str]:
    response = client.get("/api/sdk/config", headers=headers)
    assert response.status_code == 200, response.text
    return {item["key"] for item in response.json()["experiments"]}


def test_track_right_after_a_stop_is_409(
    client: TestClient, editor: dict[str, str], reviewer: dict[str, str], ingest: dict
) -> None:
    create_running(client, editor, reviewer)
    assert track(client, ingest).status_code == 200  # the running summary is now cached
    move(client, "checkout", "stopped", editor)
    refused = track(client, ingest, "u-2")
    assert refused.status_code == 409, refused.text
    batch = client.post(
        "/api/events",
        json={"events": [{"experimentKey": "checkout", "userKey": "u-3", "eventType": "x"}]},
        headers=ingest,
    )
    assert batch.json()["rejected"] == 1


def test_assign_and_sdk_config_right_after_a_start_and_a_stop(
    client: TestClient,
    services: Services,
    editor: dict[str, str],
    reviewer: dict[str, str],
    ingest: dict,
) -> None:
    allocations_of(services).check_interval = TTL  # only invalidation can show a change
    assert assign(client, ingest).status_code == 404  # no such experiment: now cached
    assert sdk_keys(client, ingest) == set()
    create_running(client, editor, reviewer)
    started = assign(client, ingest)
    assert started.status_code == 200, started.text
    assert started.json()["variant"] in {"control", "one-page"}
    assert sdk_keys(client, ingest) == {"checkout"}
    move(client, "checkout", "stopped", editor)
    assert assign(client, ingest).json()["reason"] == "inactive"
    assert sdk_keys(client, ingest) == set()


def test_a_disabled_users_key_is_refused_at_once(
    client: TestClient, services: Services, editor: dict, reviewer: dict, ingest: dict
) -> None:
    create_running(client, editor, reviewer)
    assert track(client, ingest).status_code == 200  # the key check is now cached
    with services.sessions.begin() as session:
        set_active(session=session, username="collector", active=False, actor="test")
    assert track(client, ingest, "u-2").status_code == 401
    assert assign(client, ingest).status_code == 401
    with services.sessions.begin() as session:
        set_active(session=session, username="collector", active=True, actor="test")
    assert track(client, ingest, "u-3").status_code == 200


def test_another_server_sees_a_stop_within_its_ttl(
    client: TestClient, other: TestClient, editor: dict, reviewer: dict, ingest: dict
) -> None:
    create_running(client, editor, reviewer)
    assert track(other, ingest).status_code == 200
    time.sleep(OTHER_TTL)  # the cached summary is due for a refresh, and is served meanwhile
    move(client, "checkout", "stopped", editor)
    time.sleep(0.05)
    # a stale-while-revalidate cache alone would still accept this one
    assert track(other, ingest, "u-2").status_code == 409


def test_another_server_refuses_a_disabled_users_key_within_its_ttl(
    client: TestClient,
    other: TestClient,
    services: Services,
    editor: dict,
    reviewer: dict,
    ingest: dict,
) -> None:
    create_running(client, editor, reviewer)
    assert track(other, ingest).status_code == 200
    time.sleep(OTHER_TTL)
    with services.sessions.begin() as session:  # as `splitlab users disable` does
        set_active(session=session, username="collector", active=False, actor="test")
    time.sleep(0.05)
    assert track(other, ingest, "u-2").status_code == 401


def test_another_server_assigns_right_after_a_start(
    client: TestClient, other: TestClient, editor: dict, reviewer: dict, ingest: dict
) -> None:
    allocations_of(other.app.state.services).check_interval = TTL  # type: ignore[attr-defined]
    assert assign(other, ingest).status_code == 404
    create_running(client, editor, reviewer)
    started = assign(other, ingest)  # no wait: a running experiment is never "unknown"
    assert started.status_code == 200, started.text
    assert started.json()["variant"] in {"control", "one-page"}

"""Admin endpoints for users and API keys: each change audited and applied at once (the key
cache is on here, ttl 30 s)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.domain import Role, Scope
from tests.conftest import Keys

METRICS = "/api/metrics"
KEY_OK = 422
"""/api/track's answer when the key passed: the item names an unknown experiment."""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ingest_cache_seconds": 30.0, "session_cache_seconds": 30.0}


def track_status(client: TestClient, headers: dict[str, str]) -> int:
    """Status of an ingestion request: 401 when the key is refused, else the validation's."""
    body = {"experimentKey": "nowhere", "userKey": "u", "eventType": "x"}
    return client.post("/api/track", json=body, headers=headers).status_code


def audit(client: TestClient, admin: dict[str, str], path: str) -> list[dict[str, Any]]:
    response = client.get(path, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()["entries"]  # type: ignore[no-any-return]


def test_only_admins_manage_users(client: TestClient, keys: Keys, admin: dict) -> None:
    editor = keys.headers("ed", Role.EDITOR)
    read_only_admin = keys.headers("alice", Role.ADMIN, Scope.READ)
    for headers in (editor, read_only_admin):
        assert client.get("/api/users", headers=headers).status_code == 403
        assert client.get("/api/keys", headers=headers).status_code == 403
        patch = client.patch("/api/users/ed", json={"role": "admin"}, headers=headers)
        assert patch.status_code == 403
    listed = client.get("/api/users", headers=admin).json()
    assert {u["username"]: u["role"] for u in listed["users"]} == {"alice": "admin", "ed": "editor"}
    assert client.get("/api/users", headers={}).status_code == 401


def test_set_role_is_audited_and_applies_to_the_next_request(
    client: TestClient, keys: Keys, admin: dict
) -> None:
    ed = keys.headers("ed", Role.EDITOR)
    metric = {"key": "m", "kind": "binary", "event": "e"}
    assert client.post(METRICS, json=metric, headers=ed).status_code == 201
    changed = client.patch(
        "/api/users/ed", json={"role": "viewer", "reason": "left the team"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "viewer"
    assert client.post(METRICS, json=metric, headers=ed).status_code == 403
    assert track_status(client, ed) == 403  # a viewer cannot ingest
    (entry, _created) = audit(client, admin, "/api/users/ed/audit")
    assert entry["action"] == "set_role" and entry["actor"] == "alice"
    assert entry["changes"] == {"role": {"from": "editor", "to": "viewer"}}
    assert entry["reason"] == "left the team"


def test_disable_and_enable(client: TestClient, keys: Keys, admin: dict) -> None:
    ed = keys.headers("ed", Role.EDITOR, Scope.INGEST)
    assert track_status(client, ed) == KEY_OK
    off = client.patch("/api/users/ed", json={"active": False}, headers=admin)
    assert off.status_code == 200 and off.json()["active"] is False
    assert track_status(client, ed) == 401  # the cached key check was dropped
    assert client.get("/api/experiments", headers=ed).status_code == 401
    keys_listed = client.get("/api/keys", params={"user": "ed"}, headers=admin).json()["keys"]
    assert [k["active"] for k in keys_listed] == [False]
    assert client.patch("/api/users/ed", json={"active": True}, headers=admin).status_code == 200
    assert track_status(client, ed) == KEY_OK
    actions = [e["action"] for e in audit(client, admin, "/api/users/ed/audit")]
    assert actions == ["enable", "disable", "create"]


def test_revoke_a_key(client: TestClient, keys: Keys, admin: dict) -> None:
    ed = keys.headers("ed", Role.EDITOR, Scope.INGEST)
    assert track_status(client, ed) == KEY_OK
    listed = client.get("/api/keys", headers=admin).json()["keys"]
    (entry,) = [k for k in listed if k["user"] == "ed"]
    assert "key_hash" not in entry and entry["scope"] == "ingest" and entry["active"]
    assert ed["Authorization"].split("_")[1] == entry["id"]
    assert client.delete(f"/api/keys/{entry['id']}", headers=admin).status_code == 204
    assert track_status(client, ed) == 401
    assert client.delete(f"/api/keys/{entry['id']}", headers=admin).status_code == 204
    actions = [e["action"] for e in audit(client, admin, f"/api/keys/{entry['id']}/audit")]
    assert actions == ["revoke", "create"]  # revoking again changes nothing
    assert client.delete("/api/keys/nope", headers=admin).status_code == 404


def test_delete_a_user(client: TestClient, keys: Keys, admin: dict) -> None:
    ed = keys.headers("ed", Role.EDITOR, Scope.INGEST)
    assert track_status(client, ed) == KEY_OK
    assert (
        client.delete("/api/users/ed", params={"reason": "gone"}, headers=admin).status_code == 204
    )
    assert track_status(client, ed) == 401
    assert client.get("/api/users/ed", headers=admin).status_code == 404
    assert all(k["user"] != "ed" for k in client.get("/api/keys", headers=admin).json()["keys"])
    (entry, _) = audit(client, admin, "/api/users/ed/audit")  # kept after the deletion
    assert entry["action"] == "delete" and entry["reason"] == "gone"
    assert len(entry["snapshot"]["api_keys"]) == 1
    assert client.delete("/api/users/ed", headers=admin).status_code == 404


def test_the_last_active_admin_stays(client: TestClient, keys: Keys, admin: dict) -> None:
    for method, kwargs in (
        ("patch", {"json": {"role": "editor"}}),
        ("patch", {"json": {"active": False}}),
        ("delete", {}),
    ):
        response = client.request(method, "/api/users/alice", headers=admin, **kwargs)
        assert response.status_code == 409, response.text
        assert "last active admin" in response.json()["error"]["message"]
    keys.user("bea", Role.ADMIN)
    assert (
        client.patch("/api/users/alice", json={"role": "editor"}, headers=admin).status_code == 200
    )


def test_bad_patches_are_422(client: TestClient, admin: dict) -> None:
    assert client.patch("/api/users/alice", json={}, headers=admin).status_code == 422
    assert client.patch("/api/users/alice", json={"role": "boss"}, headers=admin).status_code == 422
    assert client.patch("/api/users/alice", json={"admin": True}, headers=admin).status_code == 422
    assert (
        client.patch("/api/users/nobody", json={"role": "viewer"}, headers=admin).status_code == 404
    )

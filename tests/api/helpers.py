"""Builders shared by API tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

METRIC = {"key": "conversion", "kind": "binary", "event": "purchase"}


def experiment_body(key: str = "checkout", **overrides: Any) -> dict[str, Any]:
    body = {
        "key": key,
        "name": "New checkout",
        "hypothesis": "A one-page checkout raises conversion",
        "predicted_outcome": "+2% conversion",
        "type": "feature",
        "team": "growth",
        "owner": "alice",
        "tags": ["checkout"],
        "variants": [
            {"key": "control", "weight": 0.5, "is_control": True},
            {"key": "one-page", "weight": 0.5, "payload": {"layout": "single"}},
        ],
        "metrics": {"primary": "conversion"},
    }
    return body | overrides


def create_running(
    client: TestClient,
    owner: dict[str, str],
    reviewer: dict[str, str],
    key: str = "checkout",
    **overrides: Any,
) -> dict[str, Any]:
    """Metric + experiment, through review with an approval, into running."""
    assert client.post("/api/metrics", json=METRIC, headers=owner).status_code in (200, 201)
    created = client.post("/api/experiments", json=experiment_body(key, **overrides), headers=owner)
    assert created.status_code == 201, created.text
    move(client, key, "review", owner)
    approved = client.post(
        f"/api/experiments/{key}/reviews", json={"decision": "approve"}, headers=reviewer
    )
    assert approved.status_code == 201, approved.text
    return move(client, key, "running", owner)


def move(client: TestClient, key: str, to: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post(f"/api/experiments/{key}/transitions", json={"to": to}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()

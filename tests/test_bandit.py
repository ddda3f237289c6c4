"""Bandits: Thompson weights through the audited store update, with sticky units in place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.analysis.bandit import rebalance_bandit
from splitlab.api.caches import Allocations
from splitlab.domain import Role, Scope
from splitlab.services import Services
from tests.api.helpers import create_running


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite + DuckDB only: the subject here is not the stores."""
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture(autouse=True)
def _fresh_configs(services: Services) -> None:
    services.allocations = Allocations(services, check_interval=0)


@pytest.fixture
def ingest(keys: Any) -> dict[str, str]:
    return keys.headers("collector", Role.EDITOR, Scope.INGEST)


@pytest.fixture
def bandit(client: TestClient, editor: dict, reviewer: dict) -> None:
    create_running(client, editor, reviewer, "headline", type="bandit")


def assign_all(client: TestClient, headers: dict, units: list[str]) -> dict[str, str]:
    answers = {}
    for unit in units:
        response = client.post(
            "/api/assign", json={"experiment": "headline", "unitId": unit}, headers=headers
        )
        answers[unit] = response.json()["variant"]
    return answers


def weights(client: TestClient, headers: dict) -> list[float]:
    spec = client.get("/api/experiments/headline", headers=headers).json()
    return [v["weight"] for v in spec["variants"]]


def bandit_audit(client: TestClient, headers: dict) -> list[dict[str, Any]]:
    entries = client.get("/api/experiments/headline/audit", headers=headers).json()["entries"]
    return [e for e in entries if e["action"] == "update"]


def test_weights_move_to_the_better_arm_audited_with_sticky_units_in_place(
    client: TestClient, services: Services, editor: dict, ingest: dict, bandit: None
) -> None:
    early = assign_all(client, ingest, [f"u{i}" for i in range(100)])
    assert 25 < sum(v == "control" for v in early.values()) < 75

    first = rebalance_bandit(
        services=services,
        key="headline",
        posterior_means=[0.10, 0.12],
        posterior_variances=[0.0001, 0.0001],
    )
    assert first.before == (0.5, 0.5)
    control, challenger = first.after
    assert challenger > 0.85 and control >= 0.01 and sum(first.after) == pytest.approx(1)
    assert weights(client, editor) == list(first.after)

    second = rebalance_bandit(
        services=services,
        key="headline",
        posterior_means=[0.10, 0.30],
        posterior_variances=[0.0001, 0.0001],
    )
    assert second.after == (0.01, 0.99)  # the floor keeps the losing arm alive
    entries = bandit_audit(client, editor)
    assert [e["actor"] for e in entries] == ["bandit", "bandit"]
    newest = entries[0]["changes"]["variants"]
    assert [v["weight"] for v in newest["before"]] == list(first.after)
    assert [v["weight"] for v in newest["after"]] == [0.01, 0.99]
    assert all(e["at"] for e in entries)

    # already exposed units stay; new units follow the new weights
    assert assign_all(client, ingest, list(early)) == early
    fresh = assign_all(client, ingest, [f"new{i}" for i in range(100)])
    assert sum(v == "one-page" for v in fresh.values()) > 0.95 * len(fresh)


def test_rebalance_endpoint_computes_posteriors_from_the_warehouse(
    client: TestClient, services: Services, editor: dict, ingest: dict, bandit: None
) -> None:
    exposed = assign_all(client, ingest, [f"u{i}" for i in range(150)])
    # one-page converts 60% of its units, control 10%; an event before exposure never counts
    events = []
    for n, (unit, variant) in enumerate(sorted(exposed.items())):
        if n % 10 < (6 if variant == "one-page" else 1):
            events.append({"userKey": unit, "eventType": "purchase", "eventId": f"e-{unit}"})
    events.append({"userKey": "u0", "eventType": "purchase", "eventId": "early",
                   "occurredAt": "2000-01-01T00:00:00Z"})  # fmt: skip
    buffer = services.exposure_buffer
    assert buffer is not None
    client.portal.call(buffer.drain)  # exposures committed
    stored = client.post("/api/events", json={"events": events}, headers=ingest)
    assert stored.status_code == 200 and stored.json()["accepted"] == len(events)

    response = client.post("/api/experiments/headline/rebalance", headers=editor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["posteriors"] == "warehouse"
    units = {v: sum(1 for x in exposed.values() if x == v) for v in ("control", "one-page")}
    assert body["units"] == units
    converted = {v: sum(1 for e in events[:-1] if exposed[e["userKey"]] == v) for v in units}
    assert body["conversions"] == converted
    assert body["weights"]["one-page"]["after"] == 0.99
    assert body["weights"]["control"] == {"before": 0.5, "after": 0.01}
    (entry,) = bandit_audit(client, editor)
    assert entry["actor"] == "bandit" and "requested by ed" in entry["reason"]
    assert assign_all(client, ingest, list(exposed)) == exposed


def test_rebalance_guards(
    client: TestClient, editor: dict, reviewer: dict, ingest: dict, bandit: None
) -> None:
    body = {"posteriorMeans": [0.1, 0.2], "posteriorVariances": [0.01, 0.01]}
    url = "/api/experiments/headline/rebalance"
    assert client.post(url, json=body, headers=ingest).status_code == 403
    short = client.post(url, json=body | {"posteriorMeans": [0.1]}, headers=editor)
    assert short.status_code == 422 and short.json()["error"]["details"][0]["loc"] == [
        "posteriorMeans"
    ]
    words = client.post(url, json=body | {"posteriorVariances": "x"}, headers=editor)
    assert words.status_code == 422
    ok = client.post(url, json=body, headers=editor)
    assert ok.status_code == 200 and ok.json()["posteriors"] == "request"

    create_running(client, editor, reviewer, "plain")
    fixed = client.post("/api/experiments/plain/rebalance", json=body, headers=editor)
    assert fixed.status_code == 409 and "not bandit" in fixed.json()["error"]["message"]
    assert (
        client.post("/api/experiments/nope/rebalance", json=body, headers=editor).status_code == 404
    )

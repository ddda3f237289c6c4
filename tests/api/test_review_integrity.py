"""Review integrity over HTTP, on SQLite and PostgreSQL: an approval is bound to the
configuration it approved, self-review is judged against the creator, metric definitions
are versioned, and the audit log says what happened in words."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.analysis.service import load_plan
from splitlab.domain import MetricKind, Role
from splitlab.services import Services
from tests.api.helpers import METRIC, create_running, experiment_body, move

BROKEN = {
    "variants": [{"key": "one-page", "weight": 0.3}],
    "metrics": {"primary": None},
    "hypothesis": "",
}
"""The edit of the issue: one variant of weight 0.3, no control, no primary metric."""


@pytest.fixture
def with_metric(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/api/metrics", json=METRIC, headers=admin).status_code == 201


def audit(client: TestClient, key: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(f"/api/experiments/{key}/audit", headers=headers)
    assert response.status_code == 200
    return response.json()["entries"]


def approve(client: TestClient, key: str, headers: dict[str, str]) -> Any:
    return client.post(
        f"/api/experiments/{key}/reviews", json={"decision": "approve"}, headers=headers
    )


def to(client: TestClient, key: str, status: str, headers: dict[str, str]) -> Any:
    return client.post(f"/api/experiments/{key}/transitions", json={"to": status}, headers=headers)


def in_review(client: TestClient, admin: dict, reviewer: dict, **overrides: Any) -> None:
    created = client.post("/api/experiments", json=experiment_body(**overrides), headers=admin)
    assert created.status_code == 201, created.text
    move(client, "checkout", "review", admin)
    assert approve(client, "checkout", reviewer).status_code == 201


def test_edit_after_approval_voids_it_until_approved_again(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    in_review(client, admin, reviewer)
    before = client.get("/api/experiments/checkout", headers=admin).json()["config_fingerprint"]
    edit = {
        "variants": [
            {"key": "control", "weight": 0.5, "is_control": True},
            {"key": "two-page", "weight": 0.5},
        ]
    }
    response = client.patch("/api/experiments/checkout", json=edit, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "review"
    assert response.json()["config_fingerprint"] != before

    voided, update = audit(client, "checkout", admin)[:2]
    assert update["action"] == "update"
    assert voided["action"] == "approval_voided"
    assert voided["reason"] == "approval voided: variants changed"
    assert voided["actor"] == "alice"

    blocked = to(client, "checkout", "running", admin)
    assert blocked.status_code == 409
    assert "approval" in blocked.json()["error"]["message"]

    requests = client.get("/api/experiments/checkout/reviews", headers=admin).json()["requests"]
    assert [r["state"] for r in requests] == ["open", "voided"]
    assert requests[1]["reviews"][0]["fingerprint"] == before

    assert approve(client, "checkout", reviewer).status_code == 201
    assert move(client, "checkout", "running", admin)["variants"][1]["key"] == "two-page"


def test_edits_outside_the_approved_configuration_keep_the_approval(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    in_review(client, admin, reviewer)
    edit = {"name": "Checkout, one page", "team": "web", "tags": ["q3"]}
    assert client.patch("/api/experiments/checkout", json=edit, headers=admin).status_code == 200
    assert audit(client, "checkout", admin)[0]["action"] == "update"
    assert move(client, "checkout", "running", admin)["status"] == "running"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"hypothesis": "something else"}, "hypothesis"),
        ({"metrics": {"primary": "conversion", "secondary": ["conversion"]}}, "metrics"),
        ({"plan": {"alpha": 0.01}}, "plan"),
        ({"coverage": 0.5}, "coverage"),
        ({"namespace": {"id": "checkout", "start": 0, "end": 0.5}}, "namespace"),
    ],
)
def test_each_approved_field_voids(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None, edit: dict, field: str
) -> None:
    in_review(client, admin, reviewer)
    assert client.patch("/api/experiments/checkout", json=edit, headers=admin).status_code == 200
    assert audit(client, "checkout", admin)[0]["reason"] == f"approval voided: {field} changed"
    assert to(client, "checkout", "running", admin).status_code == 409


def test_the_issue_edit_can_neither_run_nor_be_approved(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    in_review(client, admin, reviewer)
    assert client.patch("/api/experiments/checkout", json=BROKEN, headers=admin).status_code == 200
    blocked = to(client, "checkout", "running", admin)
    assert blocked.status_code == 409
    problems = blocked.json()["error"]["details"]["problems"]
    assert len(problems) == 5  # hypothesis, < 2 variants, no control, weights, primary
    assert any("exactly one control" in p for p in problems)
    assert any("metrics.primary" in p for p in problems)

    refused = approve(client, "checkout", reviewer)
    assert refused.status_code == 409
    assert "cannot be approved" in refused.json()["error"]["message"]
    assert client.get("/api/experiments/checkout", headers=admin).json()["status"] == "review"


def test_edit_while_scheduled_sends_back_to_review(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    in_review(client, admin, reviewer, start_at="2030-01-01T00:00:00Z")
    assert move(client, "checkout", "scheduled", admin)["status"] == "scheduled"
    response = client.patch("/api/experiments/checkout", json={"coverage": 0.2}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "review"
    voided = audit(client, "checkout", admin)[0]
    assert (voided["action"], voided["from"], voided["to"]) == (
        "approval_voided",
        "scheduled",
        "review",
    )
    assert voided["summary"] == "approval voided (scheduled → review)"
    assert to(client, "checkout", "scheduled", admin).status_code == 409
    assert approve(client, "checkout", reviewer).status_code == 201
    assert move(client, "checkout", "scheduled", admin)["coverage"] == 0.2
    assert move(client, "checkout", "running", admin)["status"] == "running"


def test_owner_swap_does_not_allow_self_approval(
    client: TestClient, admin: dict, keys: Any, with_metric: None
) -> None:
    rory = keys.headers("rory", Role.REVIEWER)
    created = client.post("/api/experiments", json=experiment_body(owner="rory"), headers=rory)
    assert created.json()["created_by"] == "rory"
    swapped = client.patch("/api/experiments/checkout", json={"owner": "alice"}, headers=rory)
    assert swapped.json()["owner"] == "alice"
    assert swapped.json()["created_by"] == "rory"
    move(client, "checkout", "review", rory)
    own = approve(client, "checkout", rory)
    assert own.status_code == 403
    assert "creator or owner" in own.json()["error"]["message"]
    assert to(client, "checkout", "running", rory).status_code == 409
    # the named owner may not approve either; a third reviewer may
    assert approve(client, "checkout", admin).status_code == 422  # admin owner: needs a reason
    assert approve(client, "checkout", keys.headers("rita", Role.REVIEWER)).status_code == 201


def test_created_by_cannot_be_patched(client: TestClient, admin: dict, with_metric: None) -> None:
    client.post("/api/experiments", json=experiment_body(), headers=admin)
    response = client.patch("/api/experiments/checkout", json={"created_by": "x"}, headers=admin)
    assert response.status_code == 422
    assert client.get("/api/experiments/checkout", headers=admin).json()["created_by"] == "alice"


def test_audit_shows_a_creation_as_created(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    create_running(client, admin, reviewer)
    entries = list(reversed(audit(client, "checkout", admin)))
    assert [e["summary"] for e in entries] == [
        "created",
        "draft → review",
        "approved",
        "review → running",
    ]
    assert all("None" not in e["summary"] for e in entries)
    assert entries[2]["via"] is None  # approved over the API, with rita's own key
    clone = client.post(
        "/api/experiments/checkout/clone", json={"key": "checkout-v2"}, headers=admin
    )
    assert clone.status_code == 201
    assert audit(client, "checkout-v2", admin)[0]["summary"] == "created"


# ---------------------------------------------------------------- metric versions

REFUND_SUM = {"key": "conversion", "kind": "sum", "event": "refund"}


def test_metric_change_on_a_running_experiment_is_a_new_version(
    client: TestClient, services: Services, admin: dict, reviewer: dict
) -> None:
    running = create_running(client, admin, reviewer)
    assert running["metric_versions"] == {"conversion": 1}
    fingerprint = running["config_fingerprint"]

    changed = client.post("/api/metrics", json=REFUND_SUM, headers=admin)
    assert changed.status_code == 200
    assert changed.json()["version"] == 2
    assert changed.json()["kind"] == "sum"

    after = client.get("/api/experiments/checkout", headers=admin).json()
    assert after["metric_versions"] == {"conversion": 1}
    assert after["config_fingerprint"] == fingerprint
    entry = audit(client, "checkout", admin)[0]
    assert entry["action"] == "metric_changed"
    assert entry["actor"] == "alice"
    assert "conversion is now version 2" in entry["reason"]
    assert "keeps analysing version 1" in entry["reason"]
    metric_audit = client.get("/api/metrics/conversion/versions", headers=admin).json()
    assert [v["version"] for v in metric_audit["versions"]] == [2, 1]
    assert metric_audit["versions"][1]["definition"]["event"] == "purchase"
    old = client.get("/api/metrics/conversion?version=1", headers=admin).json()
    assert (old["kind"], old["event"], old["version"]) == ("binary", "purchase", 1)
    assert client.get("/api/metrics/conversion?version=9", headers=admin).status_code == 404

    plan, _ = load_plan(services=services, key="checkout")
    definition = plan.metrics[0].definition
    assert (definition.kind, definition.event) == (MetricKind.BINARY, "purchase")

    # the analysis counts purchases (binary: control 1 of 2 users), not refund sums (50)
    exposures = [("control", "u1"), ("control", "u2"), ("one-page", "u3"), ("one-page", "u4")]
    events = [(variant, user, "exposure") for variant, user in exposures] + [
        ("control", "u1", "purchase"),
        ("control", "u1", "refund"),
        ("control", "u2", "refund"),
        ("one-page", "u3", "purchase"),
        ("one-page", "u4", "refund"),
    ]
    for variant, user, event in events:
        body = {
            "experimentKey": "checkout",
            "variantKey": variant,
            "userKey": user,
            "eventType": event,
            "value": 50.0,
        }
        assert client.post("/api/track", json=body, headers=admin).status_code == 200
    result = client.post("/api/experiments/checkout/analyze", headers=admin)
    assert result.status_code == 200, result.text
    snapshot = result.json()
    assert snapshot["settings"]["metrics"][0]["definition"]["event"] == "purchase"
    assert [u["n"] for u in snapshot["units"]] == [2, 2]
    row = next(r for r in snapshot["results"] if r["segment"] is None)
    assert row["control_mean"] == pytest.approx(0.5), row

    # a new experiment uses the current version
    fresh = client.post("/api/experiments", json=experiment_body("next"), headers=admin).json()
    assert fresh["metric_versions"] == {"conversion": 2}
    plan, _ = load_plan(services=services, key="next")
    assert plan.metrics[0].definition.event == "refund"


def test_identical_metric_post_is_not_a_new_version(
    client: TestClient, admin: dict, with_metric: None
) -> None:
    again = client.post("/api/metrics", json=METRIC, headers=admin)
    assert again.status_code == 200
    assert again.json()["version"] == 1
    listing = client.get("/api/metrics", headers=admin).json()["metrics"]
    assert listing[0]["version"] == 1


def test_metric_change_voids_an_approval_in_review(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    in_review(client, admin, reviewer)
    assert client.post("/api/metrics", json=REFUND_SUM, headers=admin).status_code == 200
    voided = audit(client, "checkout", admin)[0]
    assert voided["action"] == "approval_voided"
    assert "metric conversion is now version 2" in voided["reason"]
    assert to(client, "checkout", "running", admin).status_code == 409
    assert approve(client, "checkout", reviewer).status_code == 201
    assert move(client, "checkout", "running", admin)["metric_versions"] == {"conversion": 2}


def test_weight_change_while_running_keeps_the_pinned_versions(
    client: TestClient, services: Services, admin: dict, reviewer: dict
) -> None:
    create_running(client, admin, reviewer)
    assert client.post("/api/metrics", json=REFUND_SUM, headers=admin).status_code == 200
    reweighted = {
        "variants": [
            {"key": "control", "weight": 0.7, "is_control": True},
            {"key": "one-page", "weight": 0.3, "payload": {"layout": "single"}},
        ]
    }
    response = client.patch("/api/experiments/checkout", json=reweighted, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["metric_versions"] == {"conversion": 1}
    plan, _ = load_plan(services=services, key="checkout")
    assert plan.metrics[0].definition.event == "purchase"

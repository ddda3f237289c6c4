"""Experiments over HTTP, on SQLite and PostgreSQL: CRUD, lifecycle, audit, reviews."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import METRIC, create_running, experiment_body, move


@pytest.fixture
def with_metric(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/api/metrics", json=METRIC, headers=admin).status_code == 201


def audit(client: TestClient, key: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(f"/api/experiments/{key}/audit", headers=headers)
    assert response.status_code == 200
    return response.json()["entries"]


def test_create_read_list_and_filters(client: TestClient, admin: dict, with_metric: None) -> None:
    created = client.post("/api/experiments", json=experiment_body(), headers=admin)
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "draft"
    assert body["seed"] == "checkout"  # the seed defaults to the key
    assert body["hash_version"] == 2
    assert body["coverage"] == 1.0
    assert body["variants"][1]["payload"] == {"layout": "single"}
    other = experiment_body("pricing", team="monetization", type="cost_optimization")
    assert client.post("/api/experiments", json=other, headers=admin).status_code == 201

    assert client.get("/api/experiments/checkout", headers=admin).json()["name"] == "New checkout"
    listing = client.get("/api/experiments", headers=admin).json()
    assert listing["count"] == 2
    by_team = client.get("/api/experiments?team=monetization", headers=admin).json()
    assert [e["key"] for e in by_team["experiments"]] == ["pricing"]
    by_type = client.get("/api/experiments?type=feature", headers=admin).json()
    assert [e["key"] for e in by_type["experiments"]] == ["checkout"]
    by_q = client.get("/api/experiments?q=PRICING", headers=admin).json()
    assert [e["key"] for e in by_q["experiments"]] == ["pricing"]
    by_status = client.get("/api/experiments?status=running", headers=admin).json()
    assert by_status["count"] == 0


def test_duplicate_key_is_409(client: TestClient, admin: dict, with_metric: None) -> None:
    assert client.post("/api/experiments", json=experiment_body(), headers=admin).status_code == 201
    again = client.post("/api/experiments", json=experiment_body(), headers=admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_unknown_metric_is_422_with_path(client: TestClient, admin: dict) -> None:
    response = client.post("/api/experiments", json=experiment_body(), headers=admin)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["loc"] == ["metrics", "primary"]
    assert client.get("/api/experiments", headers=admin).json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"key": "Not A Slug"}, ["key"]),
        ({"key": "x", "coverage": 1.5}, ["coverage"]),
        ({"key": "x", "variants": [{"key": "a", "weight": 2}]}, ["variants", 0, "weight"]),
        ({"key": "x", "type": "banana"}, ["type"]),
        ({"key": "x", "plan": {"engine": "magic"}}, ["plan", "engine"]),
        ({"key": "x", "namespace": {"id": "ns", "start": 0.5, "end": 0.2}}, ["namespace"]),
        ({"key": "x", "surprise": 1}, ["surprise"]),
    ],
)
def test_invalid_input_names_the_field(
    client: TestClient, admin: dict, body: dict, loc: list
) -> None:
    response = client.post("/api/experiments", json=body, headers=admin)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == loc
    assert client.get("/api/experiments", headers=admin).json()["count"] == 0


def test_malformed_json_is_400(client: TestClient, admin: dict) -> None:
    response = client.post(
        "/api/experiments",
        content=b'{"key": ',
        headers=admin | {"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_unknown_experiment_is_404(client: TestClient, admin: dict) -> None:
    response = client.get("/api/experiments/nope", headers=admin)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "no experiment 'nope'",
            "details": {"key": "nope"},
        }
    }


def test_full_lifecycle_with_review(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    running = create_running(client, admin, reviewer)
    assert running["status"] == "running"
    assert running["start_at"] is not None
    for status in ("stopped", "readout", "rolling_out", "shipped"):
        assert move(client, "checkout", status, admin)["status"] == status
    entries = audit(client, "checkout", admin)
    actions = [(e["action"], e["from"], e["to"]) for e in reversed(entries)]
    assert actions == [
        ("create", None, "draft"),
        ("transition", "draft", "review"),
        ("review_approve", "review", "review"),
        ("transition", "review", "running"),
        ("transition", "running", "stopped"),
        ("transition", "stopped", "readout"),
        ("transition", "readout", "rolling_out"),
        ("transition", "rolling_out", "shipped"),
    ]
    assert entries[-1]["actor"] == "alice"
    assert entries[-3]["actor"] == "rita"  # the approval


def test_forbidden_transition_is_409(client: TestClient, admin: dict, with_metric: None) -> None:
    client.post("/api/experiments", json=experiment_body(), headers=admin)
    response = client.post(
        "/api/experiments/checkout/transitions", json={"to": "running"}, headers=admin
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "transition_not_allowed"
    assert len(audit(client, "checkout", admin)) == 1  # nothing written


def test_unknown_target_status_is_422(client: TestClient, admin: dict, with_metric: None) -> None:
    client.post("/api/experiments", json=experiment_body(), headers=admin)
    response = client.post(
        "/api/experiments/checkout/transitions", json={"to": "flying"}, headers=admin
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["to"]


def test_incomplete_draft_lists_every_problem(client: TestClient, admin: dict) -> None:
    client.post("/api/experiments", json={"key": "bare"}, headers=admin)
    response = client.post(
        "/api/experiments/bare/transitions", json={"to": "review"}, headers=admin
    )
    assert response.status_code == 409
    problems = response.json()["error"]["details"]["problems"]
    assert len(problems) == 4  # hypothesis, <2 variants, no control, no primary metric


def test_leaving_review_needs_a_reviewer_approval(
    client: TestClient, admin: dict, editor: dict, with_metric: None
) -> None:
    client.post("/api/experiments", json=experiment_body(owner="ed"), headers=editor)
    move(client, "checkout", "review", editor)
    blocked = client.post(
        "/api/experiments/checkout/transitions", json={"to": "running"}, headers=editor
    )
    assert blocked.status_code == 409
    assert "approval" in blocked.json()["error"]["message"]
    # an editor is not a reviewer
    denied = client.post(
        "/api/experiments/checkout/reviews", json={"decision": "approve"}, headers=editor
    )
    assert denied.status_code == 403


def test_owner_cannot_approve_unless_admin_with_reason(
    client: TestClient, admin: dict, keys: Any, with_metric: None
) -> None:
    from splitlab.domain import Role

    owner_reviewer = keys.headers("rory", Role.REVIEWER)
    client.post("/api/experiments", json=experiment_body(owner="rory"), headers=owner_reviewer)
    move(client, "checkout", "review", owner_reviewer)
    own = client.post(
        "/api/experiments/checkout/reviews", json={"decision": "approve"}, headers=owner_reviewer
    )
    assert own.status_code == 403

    client.post("/api/experiments", json=experiment_body("mine", owner="alice"), headers=admin)
    move(client, "mine", "review", admin)
    no_reason = client.post(
        "/api/experiments/mine/reviews", json={"decision": "approve"}, headers=admin
    )
    assert no_reason.status_code == 422
    with_reason = client.post(
        "/api/experiments/mine/reviews",
        json={"decision": "approve", "comment": "on-call fix, reviewer away"},
        headers=admin,
    )
    assert with_reason.status_code == 201
    assert move(client, "mine", "running", admin)["status"] == "running"


def test_request_changes_sends_back_to_draft(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    client.post("/api/experiments", json=experiment_body(), headers=admin)
    move(client, "checkout", "review", admin)
    response = client.post(
        "/api/experiments/checkout/reviews",
        json={"decision": "request_changes", "comment": "add a guardrail"},
        headers=reviewer,
    )
    assert response.status_code == 201
    assert response.json()["experiment"]["status"] == "draft"
    requests = client.get("/api/experiments/checkout/reviews", headers=admin).json()["requests"]
    assert requests[0]["state"] == "changes_requested"
    assert requests[0]["reviews"][0]["comment"] == "add a guardrail"
    # a new round needs a new approval
    move(client, "checkout", "review", admin)
    blocked = client.post(
        "/api/experiments/checkout/transitions", json={"to": "running"}, headers=admin
    )
    assert blocked.status_code == 409


def test_running_experiment_allows_only_weights_and_coverage(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    create_running(client, admin, reviewer)
    before = len(audit(client, "checkout", admin))
    for change in (
        {"hypothesis": "something else"},
        {"metrics": {"primary": "conversion", "secondary": ["conversion"]}},
        {
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True},
                {"key": "renamed", "weight": 0.5},
            ]
        },
    ):
        response = client.patch("/api/experiments/checkout", json=change, headers=admin)
        assert response.status_code == 409, change
    assert len(audit(client, "checkout", admin)) == before

    reweighted = {
        "variants": [
            {"key": "control", "weight": 0.8, "is_control": True},
            {"key": "one-page", "weight": 0.2, "payload": {"layout": "single"}},
        ],
        "coverage": 0.5,
        "reason": "ramp down after a latency alert",
    }
    response = client.patch("/api/experiments/checkout", json=reweighted, headers=admin)
    assert response.status_code == 200, response.text
    entry = audit(client, "checkout", admin)[0]
    assert entry["action"] == "update"
    assert entry["reason"] == "ramp down after a latency alert"
    assert entry["changes"]["coverage"] == {"before": 1.0, "after": 0.5}
    assert [v["weight"] for v in entry["changes"]["variants"]["before"]] == [0.5, 0.5]
    assert [v["weight"] for v in entry["changes"]["variants"]["after"]] == [0.8, 0.2]
    assert entry["snapshot"]["coverage"] == 0.5

    bad_sum = {
        "variants": [
            {"key": "control", "weight": 0.8, "is_control": True},
            {"key": "one-page", "weight": 0.3, "payload": {"layout": "single"}},
        ]
    }
    assert client.patch("/api/experiments/checkout", json=bad_sum, headers=admin).status_code == 422


def test_stopped_experiment_is_frozen_and_cannot_restart(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    create_running(client, admin, reviewer)
    move(client, "checkout", "stopped", admin)
    restart = client.post(
        "/api/experiments/checkout/transitions", json={"to": "running"}, headers=admin
    )
    assert restart.status_code == 409
    assert "clone" in restart.json()["error"]["message"]
    edit = client.patch("/api/experiments/checkout", json={"coverage": 0.3}, headers=admin)
    assert edit.status_code == 409


def test_draft_edit_and_delete(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    client.post("/api/experiments", json=experiment_body(), headers=admin)
    response = client.patch(
        "/api/experiments/checkout", json={"hypothesis": "sharper", "reason": "typo"}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["hypothesis"] == "sharper"
    assert client.delete("/api/experiments/checkout", headers=admin).status_code == 204
    assert client.get("/api/experiments/checkout", headers=admin).status_code == 404
    entries = client.get("/api/experiments/checkout/audit", headers=admin).json()["entries"]
    assert [e["action"] for e in entries] == ["delete", "update", "create"]

    create_running(client, admin, reviewer, key="live")
    assert client.delete("/api/experiments/live", headers=admin).status_code == 409


def test_every_mutation_leaves_exactly_one_audit_entry(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    key = "checkout"
    steps = [
        lambda: client.post("/api/experiments", json=experiment_body(), headers=admin),
        lambda: client.patch(f"/api/experiments/{key}", json={"team": "web"}, headers=admin),
        lambda: client.post(
            f"/api/experiments/{key}/notes", json={"body": "kick-off"}, headers=admin
        ),
        lambda: client.post(
            f"/api/experiments/{key}/transitions", json={"to": "review"}, headers=admin
        ),
        lambda: client.post(
            f"/api/experiments/{key}/reviews", json={"decision": "approve"}, headers=reviewer
        ),
        lambda: client.post(
            f"/api/experiments/{key}/transitions", json={"to": "running"}, headers=admin
        ),
    ]
    for count, step in enumerate(steps, start=1):
        response = step()
        assert response.status_code in (200, 201), response.text
        entries = audit(client, key, admin)
        assert len(entries) == count
        latest = entries[0]
        current = client.get(f"/api/experiments/{key}", headers=admin).json()
        assert latest["snapshot"]["status"] == current["status"]
        assert latest["snapshot"]["team"] == current["team"]
        assert latest["snapshot"]["variants"] == current["variants"]
    # a no-op edit writes nothing
    client.patch(f"/api/experiments/{key}", json={"team": "web"}, headers=admin)
    assert len(audit(client, key, admin)) == len(steps)


def test_notes_and_clone(
    client: TestClient, admin: dict, reviewer: dict, with_metric: None
) -> None:
    create_running(client, admin, reviewer)
    note = client.post(
        "/api/experiments/checkout/notes", json={"body": "SRM alert looked fine"}, headers=admin
    )
    assert note.status_code == 201
    assert note.json()["author"] == "alice"
    notes = client.get("/api/experiments/checkout/notes", headers=admin).json()["notes"]
    assert [n["body"] for n in notes] == ["SRM alert looked fine"]
    assert (
        client.post("/api/experiments/checkout/notes", json={"body": ""}, headers=admin).status_code
        == 422
    )

    clone = client.post(
        "/api/experiments/checkout/clone", json={"key": "checkout-v2"}, headers=admin
    )
    assert clone.status_code == 201
    body = clone.json()
    assert body["status"] == "draft"
    assert body["cloned_from"] == "checkout"
    assert body["seed"] == "checkout-v2"  # a new seed: a new randomisation
    assert body["start_at"] is None
    assert (
        body["variants"]
        == client.get("/api/experiments/checkout", headers=admin).json()["variants"]
    )
    assert audit(client, "checkout-v2", admin)[0]["action"] == "clone"
    taken = client.post(
        "/api/experiments/checkout/clone", json={"key": "checkout-v2"}, headers=admin
    )
    assert taken.status_code == 409


def test_metric_definitions(client: TestClient, admin: dict) -> None:
    ratio = {
        "key": "revenue-per-session",
        "kind": "ratio",
        "event": "purchase",
        "denominator_event": "session",
        "capping": {"type": "percentile", "value": 0.99},
        "cuped_days": 14,
    }
    assert client.post("/api/metrics", json=ratio, headers=admin).status_code == 201
    assert (
        client.post("/api/metrics", json=ratio | {"name": "RPS"}, headers=admin).status_code == 200
    )
    got = client.get("/api/metrics/revenue-per-session", headers=admin).json()
    assert got["name"] == "RPS"
    assert got["capping"] == {"type": "percentile", "value": 0.99}
    missing_den = client.post(
        "/api/metrics", json={"key": "r", "kind": "ratio", "event": "x"}, headers=admin
    )
    assert missing_den.status_code == 422
    assert "denominator_event" in missing_den.json()["error"]["message"]
    assert client.get("/api/metrics/nope", headers=admin).status_code == 404
    assert client.get("/api/metrics", headers=admin).json()["count"] == 1


def test_healthz_reports_schema(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["schema"] == "0001" or body["schema"].isdigit()


def test_openapi_docs_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/experiments/{key}/transitions" in paths

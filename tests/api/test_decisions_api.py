"""The decisions API on SQLite and PostgreSQL: record, list, approve and reject; roles;
every bad input a 4xx in the error shape, and nothing changed by a refusal."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.decisions.recommendation import Code
from splitlab.domain import Role, Scope
from splitlab.services import Services
from tests.api.helpers import create_running, move
from tests.conftest import Keys
from tests.decisions.decision_helpers import recommend

KEY = "checkout"
URL = f"/api/experiments/{KEY}/decisions"
SHIP = {"action": "ship", "variant": "one-page", "rationale": "conversion up, guardrails fine"}


def snapshot(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """What a refused request must leave as it was."""
    experiment = client.get(f"/api/experiments/{KEY}", headers=headers).json()
    return {
        "status": experiment["status"],
        "variants": experiment["variants"],
        "end_at": experiment["end_at"],
        "plan": experiment["plan"],
        "decisions": client.get(URL, headers=headers).json(),
        "audit": len(
            client.get(f"/api/experiments/{KEY}/audit", headers=headers).json()["entries"]
        ),
    }


@pytest.fixture
def running(client: TestClient, admin: dict[str, str], reviewer: dict[str, str]) -> None:
    create_running(client, admin, reviewer)


def test_a_ship_that_follows_the_recommendation(
    client: TestClient, services: Services, admin: dict[str, str], running: None
) -> None:
    rec = recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    response = client.post(URL, json=SHIP | {"follows": rec}, headers=admin)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["override"], body["recommendation_id"]) == ("applied", False, rec)
    assert body["experiment_status"] == "shipped"

    listed = client.get(URL, headers=admin).json()
    assert listed["count"] == 1
    assert listed["decisions"][0]["id"] == body["id"]
    entries = client.get(f"/api/experiments/{KEY}/audit", headers=admin).json()["entries"]
    moves = [(e["from"], e["to"], e["actor"]) for e in entries if e["action"] == "transition"]
    assert moves[:3] == [
        ("readout", "shipped", "alice"),
        ("stopped", "readout", "alice"),
        ("running", "stopped", "alice"),
    ]
    assert entries[3]["action"] == "decision"
    assert entries[3]["reason"] == SHIP["rationale"]


def test_an_override_is_approved_by_another_reviewer_not_its_author(
    client: TestClient,
    services: Services,
    editor: dict[str, str],
    reviewer: dict[str, str],
    running: None,
) -> None:
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    steps = [{"percent": 10, "hold_hours": 12}, {"percent": 100}]
    response = client.post(URL, json=SHIP | {"ramp": {"steps": steps}}, headers=editor)
    assert response.status_code == 201, response.text
    pending = response.json()
    assert (pending["status"], pending["override"]) == ("pending_approval", True)
    assert pending["recommendation_code"] == "HOLD_INCONCLUSIVE"
    assert pending["experiment_status"] == "running"
    approve = f"{URL}/{pending['id']}/approve"

    before = snapshot(client, editor)
    refused = client.post(approve, json={}, headers=editor)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert snapshot(client, editor) == before

    approved = client.post(approve, json={"comment": "ok, retire the old page"}, headers=reviewer)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["reviewed_by"]) == ("applied", "rita")
    assert body["experiment_status"] == "rolling_out"
    assert body["ramp_id"] is not None
    weights = {
        v["key"]: v["weight"]
        for v in client.get(f"/api/experiments/{KEY}", headers=editor).json()["variants"]
    }
    assert weights == pytest.approx({"control": 0.9, "one-page": 0.1})
    again = client.post(approve, headers=reviewer)
    assert again.status_code == 409


def test_reject_keeps_the_experiment_as_it_is(
    client: TestClient,
    services: Services,
    editor: dict[str, str],
    reviewer: dict[str, str],
    running: None,
) -> None:
    recommend(services, KEY, Code.KEEP_RUNNING)
    pending = client.post(
        URL, json={"action": "kill", "rationale": "out of budget"}, headers=editor
    ).json()
    assert pending["status"] == "pending_approval"
    rejected = client.post(
        f"{URL}/{pending['id']}/reject", json={"comment": "let it run"}, headers=reviewer
    )
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["experiment_status"]) == (
        "rejected",
        "running",
    )


def test_roles(
    client: TestClient, services: Services, keys: Keys, admin: dict[str, str], running: None
) -> None:
    recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    viewer = keys.headers("vic", Role.VIEWER)
    read_only = keys.headers("alice", Role.ADMIN, Scope.READ)
    before = snapshot(client, admin)
    assert client.get(URL, headers=viewer).status_code == 200
    assert client.post(URL, json=SHIP, headers=viewer).status_code == 403
    assert client.post(URL, json=SHIP, headers=read_only).status_code == 403
    assert client.post(URL, json=SHIP).status_code == 401
    assert snapshot(client, admin) == before


HOSTILE: list[tuple[Any, int, list[Any] | None]] = [
    ({"action": "ship", "variant": "one-page", "rationale": ""}, 422, ["rationale"]),
    ({"action": "ship", "variant": "one-page", "rationale": "  "}, 422, ["rationale"]),
    ({**SHIP, "rationale": "y" * 10_001}, 422, ["rationale"]),
    ({**SHIP, "rationale": "a\x00b"}, 422, ["rationale"]),
    ({**SHIP, "rationale": "esc \x1b[31m"}, 422, ["rationale"]),
    ({"variant": "one-page", "rationale": "why"}, 422, ["action"]),
    ({**SHIP, "action": "yolo"}, 422, ["action"]),
    ({**SHIP, "variant": "nope"}, 422, ["variant"]),
    ({**SHIP, "variant": "control"}, 422, ["variant"]),
    ({**SHIP, "extra": 1}, 422, ["extra"]),
    ({**SHIP, "days": 3}, 422, ["days"]),
    ({"action": "extend", "rationale": "more", "days": -1}, 422, ["days"]),
    ({**SHIP, "ramp": {"steps": [{"percent": 30}, {"percent": 20}]}}, 422, None),
    (b'{"action": "ship", "rationale": "r", "ramp": {"steps": [{"percent": 1e309}]}}', 422, None),
    (b'{"action": "ship", "rationale": "r", "ramp": {"steps": [{"percent": NaN}]}}', 422, None),
    (b'{"action": "ship", "rationale": "r", "variant": "one-', 400, None),
    ({**SHIP, "ramp": {"steps": [{"percent": 10}] * 21}}, 422, None),
    ({**SHIP, "segments": [{"name": "a..b", "value": "x"}]}, 422, None),
    ({**SHIP, "follows": 99_999}, 422, ["follows"]),
    ({**SHIP, "follows": 2**63}, 422, ["follows"]),
    ([SHIP], 422, None),
    ("ship it", 422, None),
]


@pytest.mark.parametrize(("body", "code", "loc"), HOSTILE)
def test_hostile_bodies_are_refused_in_the_error_shape(
    client: TestClient,
    services: Services,
    admin: dict[str, str],
    running: None,
    body: Any,
    code: int,
    loc: list[Any] | None,
) -> None:
    recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    before = snapshot(client, admin)
    if isinstance(body, bytes):  # not what a JSON encoder would send
        sent = {"content": body, "headers": admin | {"content-type": "application/json"}}
    else:
        sent = {"json": body, "headers": admin}
    response = client.post(URL, **sent)
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["code"] == ("validation_error" if code == 422 else "bad_request")
    if loc is not None:
        assert error["details"][0]["loc"] == loc
    assert snapshot(client, admin) == before


def test_conflicts_and_forged_ids(
    client: TestClient,
    services: Services,
    admin: dict[str, str],
    reviewer: dict[str, str],
    running: None,
) -> None:
    recommend(services, KEY, Code.KILL)
    killed = client.post(URL, json={"action": "kill", "rationale": "worse"}, headers=admin)
    assert killed.status_code == 201, killed.text
    before = snapshot(client, admin)
    again = client.post(URL, json={"action": "kill", "rationale": "again"}, headers=admin)
    assert again.status_code == 409
    assert "already decided" in again.json()["error"]["message"]
    extend = client.post(URL, json={"action": "extend", "rationale": "r", "days": 2}, headers=admin)
    assert extend.status_code == 409
    for path, status in [
        (f"{URL}/{killed.json()['id']}/approve", 409),  # applied, not pending
        (f"{URL}/77777/approve", 404),
        (f"{URL}/77777/reject", 404),
        (f"{URL}/0/approve", 422),
        (f"{URL}/{2**40}/approve", 422),
        (f"{URL}/abc/approve", 422),
        ("/api/experiments/no-such/decisions/1/approve", 404),
    ]:
        response = client.post(path, json={}, headers=reviewer)
        assert response.status_code == status, (path, response.text)
        assert "error" in response.json()
    assert (
        client.post("/api/experiments/no-such/decisions", json=SHIP, headers=admin).status_code
        == 404
    )
    assert client.get("/api/experiments/no-such/decisions", headers=admin).status_code == 404
    assert snapshot(client, admin) == before


def test_a_decision_in_the_wrong_state_is_a_conflict(
    client: TestClient, admin: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer)
    move(client, KEY, "stopped", admin)
    before = snapshot(client, admin)
    response = client.post(URL, json={"action": "rollback", "rationale": "bad"}, headers=admin)
    assert response.status_code == 409
    assert response.json()["error"]["details"]["status"] == "stopped"
    assert snapshot(client, admin) == before


@pytest.mark.parametrize(
    "body",
    [{"comment": "z" * 10_001}, {"comment": "a\x00b"}, {"comment": 5}, {"verdict": "yes"}, [1]],
)
def test_a_bad_review_body_is_refused_before_anything_changes(
    client: TestClient,
    services: Services,
    editor: dict[str, str],
    reviewer: dict[str, str],
    running: None,
    body: Any,
) -> None:
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    pending = client.post(URL, json=SHIP, headers=editor).json()
    before = snapshot(client, editor)
    for verb in ("approve", "reject"):
        response = client.post(f"{URL}/{pending['id']}/{verb}", json=body, headers=reviewer)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"
    assert snapshot(client, editor) == before

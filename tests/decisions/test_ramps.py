"""Ramps in the store: validated plans, steps applied by conditional update (never skipped
or repeated), completion ships, rollback rolls back — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from splitlab.domain import Role, Status
from splitlab.errors import ConflictError, ValidationError
from splitlab.services import Services
from splitlab.store import ramps
from tests.conftest import Keys
from tests.decisions.automation_helpers import audit, make_experiment, status_of, weights_of

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
PLAN = [
    {"percent": 5, "hold_hours": 24},
    {"percent": 25, "hold_hours": 24},
    {"percent": 50, "hold_hours": 0},
    {"percent": 100},
]


@pytest.mark.parametrize(
    ("steps", "loc"),
    [
        ([], ["steps"]),
        ([{"percent": 0}, {"percent": 100}], ["steps", 0, "percent"]),
        ([{"percent": 50}, {"percent": 101}], ["steps", 1, "percent"]),
        ([{"percent": 50}, {"percent": 40}, {"percent": 100}], ["steps", 1, "percent"]),
        ([{"percent": 50}, {"percent": 50}, {"percent": 100}], ["steps", 1, "percent"]),
        ([{"percent": 10}, {"percent": 90}], ["steps", 1, "percent"]),
        ([{"percent": 10, "hold_hours": -1}, {"percent": 100}], ["steps", 0, "hold_hours"]),
        ([{"percent": 100, "extra": 1}], ["steps", 0, "extra"]),
        ("5,25,100", ["steps"]),
        ([{"percent": float("nan")}, {"percent": 100}], ["steps", 0, "percent"]),
    ],
)
def test_invalid_plans_name_the_step(steps: object, loc: list[object]) -> None:
    with pytest.raises(ValidationError) as caught:
        ramps.parse_steps(steps)
    assert next(d["loc"][: len(loc)] for d in caught.value.details) == loc


def test_weights_for_three_arms() -> None:
    from tests.decisions.automation_helpers import spec

    variants = spec("x", treatments=2).variants
    out = {v.key: v.weight for v in ramps.weights_for(variants, winner="treatment-b", percent=25)}
    assert out == {"control": 0.75, "treatment-a": 0.0, "treatment-b": 0.25}


def test_a_ramp_steps_through_its_plan_and_ships(services: Services) -> None:
    make_experiment(services, "promo", to=Status.READOUT, treatments=2)
    with services.sessions.begin() as session:
        ramp = ramps.create_ramp(
            session=session, key="promo", variant="treatment-a", steps=PLAN, actor="ed", now=T0
        )
        ramp_id = ramp.id
    assert status_of(services, "promo") == "rolling_out"
    assert weights_of(services, "promo") == {"control": 0.95, "treatment-a": 0.05, "treatment-b": 0}
    with services.sessions() as session:
        assert ramps.due_ramps(session=session, now=T0 + timedelta(hours=23)) == []
        assert [r.id for r in ramps.due_ramps(session=session, now=T0 + timedelta(hours=24))] == [
            ramp_id
        ]
    # a stale expectation (step 1 when the ramp is at 0) changes nothing
    with services.sessions.begin() as session:
        assert (
            ramps.advance_ramp(session=session, ramp_id=ramp_id, expected_step=1, actor="s") is None
        )
    for expected, percent in [(0, 25), (1, 50)]:
        with services.sessions.begin() as session:
            moved = ramps.advance_ramp(
                session=session, ramp_id=ramp_id, expected_step=expected, actor="scheduler", now=T0
            )
            assert moved is not None and moved.current_step == expected + 1
        assert weights_of(services, "promo")["treatment-a"] == percent / 100
        # the same expectation again is refused: a step is never applied twice
        with services.sessions.begin() as session:
            assert (
                ramps.advance_ramp(
                    session=session, ramp_id=ramp_id, expected_step=expected, actor="s"
                )
                is None
            )
    with services.sessions.begin() as session:
        done = ramps.advance_ramp(
            session=session, ramp_id=ramp_id, expected_step=2, actor="scheduler"
        )
        assert done is not None and done.status == ramps.COMPLETED and done.next_at is None
    assert status_of(services, "promo") == "shipped"
    assert weights_of(services, "promo") == {"control": 0.0, "treatment-a": 1.0, "treatment-b": 0}
    steps = [row.changes["percent"] for row in audit(services, "promo", "ramp_step")]  # type: ignore[index]
    assert steps == [5, 25, 50, 100]
    actions = [row.action for row in audit(services, "promo", "ramp_create", "ramp_complete")]
    assert actions == ["ramp_create", "ramp_complete"]
    with services.sessions() as session:
        shown = ramps.ramp_to_dict(ramps.latest_ramp(session=session, key="promo"))
    assert shown["status"] == "completed" and shown["current_percent"] == 100


def test_rollback_needs_a_reason_and_ends_the_experiment(services: Services) -> None:
    make_experiment(services, "promo", to=Status.READOUT)
    with services.sessions.begin() as session:
        ramps.create_ramp(
            session=session, key="promo", variant="treatment-a", steps=PLAN, actor="ed"
        )
    with services.sessions.begin() as session, pytest.raises(ValidationError):
        ramps.rollback_ramp(session=session, key="promo", reason="  ", actor="ed")
    with services.sessions.begin() as session:
        ramp = ramps.rollback_ramp(
            session=session, key="promo", reason="latency up 40%", actor="ed", evidence={"p": 0.001}
        )
        ramp_id = ramp.id
    assert status_of(services, "promo") == "rolled_back"
    entry = audit(services, "promo", "ramp_rollback")[0]
    assert entry.reason == "latency up 40%" and entry.changes["evidence"] == {"p": 0.001}  # type: ignore[index]
    transition_entry = audit(services, "promo", "transition")[-1]
    assert (transition_entry.to_status, transition_entry.reason) == (
        "rolled_back",
        "latency up 40%",
    )
    with services.sessions.begin() as session:
        assert (
            ramps.advance_ramp(session=session, ramp_id=ramp_id, expected_step=0, actor="s") is None
        )
        with pytest.raises(ConflictError):
            ramps.rollback_ramp(session=session, key="promo", reason="again", actor="ed")


def test_create_ramp_guards(services: Services) -> None:
    make_experiment(services, "live", to=Status.RUNNING)
    make_experiment(services, "done", to=Status.READOUT)
    with services.sessions.begin() as session, pytest.raises(ConflictError):
        ramps.create_ramp(
            session=session, key="live", variant="treatment-a", steps=PLAN, actor="ed"
        )
    for variant in ("control", "nope"):
        with services.sessions.begin() as session, pytest.raises(ValidationError):
            ramps.create_ramp(session=session, key="done", variant=variant, steps=PLAN, actor="ed")
    with services.sessions.begin() as session:
        ramps.create_ramp(
            session=session, key="done", variant="treatment-a", steps=PLAN, actor="ed"
        )
    with services.sessions.begin() as session, pytest.raises(ConflictError):
        ramps.create_ramp(
            session=session, key="done", variant="treatment-a", steps=PLAN, actor="ed"
        )
    with services.sessions() as session:
        assert [r.experiment_key for r in ramps.active_ramps(session=session)] == ["done"]


def test_a_one_step_plan_ships_at_once(services: Services) -> None:
    make_experiment(services, "fast", to=Status.READOUT)
    with services.sessions.begin() as session:
        ramp = ramps.create_ramp(
            session=session, key="fast", variant="treatment-a", steps=[{"percent": 100}], actor="ed"
        )
        assert ramp.status == ramps.COMPLETED
    assert status_of(services, "fast") == "shipped"


def test_a_ramp_of_an_experiment_shipped_by_hand_is_cancelled(services: Services) -> None:
    from splitlab.store.experiments import transition
    from tests.decisions.automation_helpers import OWNER

    make_experiment(services, "manual", to=Status.READOUT)
    with services.sessions.begin() as session:
        ramp_id = ramps.create_ramp(
            session=session, key="manual", variant="treatment-a", steps=PLAN, actor="ed"
        ).id
        transition(session=session, key="manual", to=Status.SHIPPED, actor=OWNER)
    with services.sessions.begin() as session:
        ramp = ramps.advance_ramp(session=session, ramp_id=ramp_id, expected_step=0, actor="s")
        assert ramp is not None and ramp.status == ramps.CANCELLED and ramp.current_step == 0
    assert weights_of(services, "manual")["treatment-a"] == 0.05


def test_ramp_api(
    services: Services, client: TestClient, editor: dict[str, str], keys: Keys
) -> None:
    make_experiment(services, "promo", to=Status.READOUT)
    assert client.get("/api/experiments/promo/ramp", headers=editor).status_code == 404
    assert client.get("/api/experiments/nope/ramp", headers=editor).status_code == 404
    with services.sessions.begin() as session:
        ramps.create_ramp(
            session=session, key="promo", variant="treatment-a", steps=PLAN, actor="ed"
        )
    shown = client.get("/api/experiments/promo/ramp", headers=editor)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["status"], body["current_step"], body["current_percent"]) == ("active", 0, 5)
    assert body["experiment_status"] == "rolling_out" and len(body["steps"]) == 4
    assert body["next_at"] is not None
    url = "/api/experiments/promo/ramp/rollback"
    for bad in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x", "extra": 1}):
        answer = client.post(url, json=bad, headers=editor)
        assert answer.status_code == 422, bad
        assert answer.json()["error"]["code"]
    viewer = keys.headers("vera", Role.VIEWER)
    assert client.post(url, json={"reason": "no"}, headers=viewer).status_code == 403
    done = client.post(url, json={"reason": "checkout errors up"}, headers=editor)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["experiment_status"]) == (
        "rolled_back",
        "rolled_back",
    )
    assert done.json()["last_error"] == "checkout errors up"
    assert audit(services, "promo", "ramp_rollback")[0].actor == "ed"
    again = client.post(url, json={"reason": "again"}, headers=editor)
    assert again.status_code == 409 and again.json()["error"]["code"]

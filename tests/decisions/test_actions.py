"""Human decisions (decisions.actions) on SQLite and PostgreSQL: following and overriding a
recommendation, approval of overrides, the lifecycle moves and their audit entries, hostile
input that changes nothing, and simultaneous decisions of which exactly one applies."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from splitlab.decisions.actions import (
    approve_decision,
    list_decisions,
    record_decision,
    reject_decision,
)
from splitlab.decisions.recommendation import Code
from splitlab.domain import Status
from splitlab.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SplitlabError,
    ValidationError,
)
from splitlab.services import Services
from splitlab.store.experiments import get_experiment
from tests.decisions.decision_helpers import (
    ADMIN,
    EDITOR,
    OWNER,
    REVIEWER,
    SECOND_REVIEWER,
    VIEWER,
    audit,
    make_experiment,
    no_approval_needed,
    recommend,
    state,
    status,
)

KEY = "checkout"


def ship(services: Services, **fields: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "services": services,
        "key": KEY,
        "action": "ship",
        "rationale": "conversion up 3% (CI 1%..5%), guardrails fine",
        "actor": EDITOR,
    }
    return record_decision(**(arguments | fields))


def transitions(services: Services, key: str = KEY) -> list[tuple[str, str, str, str]]:
    return [
        (entry.from_status, entry.to_status, entry.actor, entry.reason)
        for entry in audit(services, key)
        if entry.action == "transition"
    ]


# ---------------------------------------------------------------- following


def test_a_ship_that_follows_the_recommendation_applies_and_audits_every_move(
    services: Services,
) -> None:
    make_experiment(services, KEY)
    before = len(transitions(services))
    rec = recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")

    decision = ship(services, variant="one-page", follows=rec)

    assert decision["status"] == "applied"
    assert decision["override"] is False
    assert (decision["recommendation_id"], decision["recommendation_code"]) == (rec, "SHIP_GLOBAL")
    assert decision["experiment_status"] == "shipped" == status(services, KEY)
    moves = transitions(services)[before:]
    assert [(a, b) for a, b, _, _ in moves] == [
        ("running", "stopped"),
        ("stopped", "readout"),
        ("readout", "shipped"),
    ]
    assert {actor for _, _, actor, _ in moves} == {"ed"}
    assert all(f"decision {decision['id']} (ship one-page)" in reason for *_, reason in moves)
    recorded = [e for e in audit(services, KEY) if e.action == "decision"]
    assert len(recorded) == 1
    assert recorded[0].reason == "conversion up 3% (CI 1%..5%), guardrails fine"
    assert recorded[0].changes["decision_id"] == decision["id"]
    assert recorded[0].changes["recommendation_id"] == rec


def test_the_variant_defaults_to_the_recommended_one(services: Services) -> None:
    make_experiment(services, KEY, to=Status.READOUT)
    recommend(services, KEY, Code.SHIP_GLOBAL, variant="two-page")
    decision = ship(services)
    assert (decision["variant"], decision["override"]) == ("two-page", False)
    assert status(services, KEY) == "shipped"


def test_kill_follows_a_do_not_ship_advice_and_rollback_stops_a_running_experiment(
    services: Services,
) -> None:
    make_experiment(services, KEY, to=Status.STOPPED)
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    killed = record_decision(
        services=services, key=KEY, action="kill", rationale="flat after 4 weeks", actor=EDITOR
    )
    assert (killed["status"], killed["override"], killed["experiment_status"]) == (
        "applied",
        False,
        "killed",
    )

    make_experiment(services, "canary")
    recommend(services, "canary", Code.ROLLBACK, variant="one-page")
    rolled = record_decision(
        services=services, key="canary", action="rollback", rationale="p99 up 40%", actor=EDITOR
    )
    assert (rolled["override"], rolled["experiment_status"]) == (False, "rolled_back")
    assert [(a, b) for a, b, *_ in transitions(services, "canary")][-1] == (
        "running",
        "rolled_back",
    )


def test_ship_with_a_ramp_starts_rolling_out_at_the_first_step(services: Services) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    steps = [{"percent": p, "hold_hours": 24} for p in (5, 25, 50, 100)]

    decision = ship(services, ramp=steps)

    assert decision["experiment_status"] == "rolling_out"
    assert decision["ramp"] == {
        "steps": [{"percent": p, "hold_hours": 24.0} for p in (5, 25, 50, 100)]
    }
    assert decision["ramp_id"] is not None
    with services.sessions() as session:
        row = get_experiment(session=session, key=KEY)
        weights = {v.key: v.weight for v in row.variants}
    assert weights == pytest.approx({"control": 0.95, "one-page": 0.05, "two-page": 0.0})
    assert [(a, b) for a, b, *_ in transitions(services)][-3:] == [
        ("running", "stopped"),
        ("stopped", "readout"),
        ("readout", "rolling_out"),
    ]
    # rolling back the rollout ends its ramp too
    recommend(services, KEY, Code.ROLLBACK, variant="one-page")
    rolled = record_decision(
        services=services, key=KEY, action="rollback", rationale="errors up", actor=EDITOR
    )
    assert rolled["experiment_status"] == "rolled_back"
    assert any(e.action == "ramp_rollback" for e in audit(services, KEY))


def test_extend_moves_end_at_and_max_days_with_an_audit_entry(services: Services) -> None:
    end = datetime(2031, 1, 10, tzinfo=UTC)
    make_experiment(services, KEY, end_at=end, plan={"max_days": 14})
    recommend(services, KEY, Code.PENDING_UNDERPOWERED)

    decision = record_decision(
        services=services, key=KEY, action="extend", rationale="underpowered", actor=EDITOR, days=7
    )

    assert (decision["status"], decision["override"], decision["days"]) == ("applied", False, 7)
    with services.sessions() as session:
        row = get_experiment(session=session, key=KEY)
        assert row.end_at.replace(tzinfo=UTC) == end + timedelta(days=7)
        assert row.plan["max_days"] == 21
        assert row.status == "running"
    extended = [e for e in audit(services, KEY) if e.action == "schedule_extended"]
    assert len(extended) == 1
    assert extended[0].changes["plan.max_days"] == {"before": 14, "after": 21}
    assert extended[0].actor == "ed"


def test_extending_an_experiment_without_an_end_is_refused(services: Services) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.KEEP_RUNNING)
    before = state(services, KEY)
    with pytest.raises(ConflictError, match="nothing to extend"):
        record_decision(
            services=services, key=KEY, action="extend", rationale="more", actor=EDITOR, days=3
        )
    assert state(services, KEY) == before


# ---------------------------------------------------------------- overriding


def test_an_override_waits_for_another_reviewer_who_applies_it(services: Services) -> None:
    make_experiment(services, KEY)
    rec = recommend(services, KEY, Code.HOLD_INCONCLUSIVE)

    decision = ship(services, variant="one-page", rationale="strategic: the old page is retired")

    assert decision["status"] == "pending_approval"
    assert decision["override"] is True
    assert decision["recommendation_id"] == rec
    assert decision["rationale"] == "strategic: the old page is retired"
    assert decision["experiment_status"] == "running" == status(services, KEY)
    with services.sessions() as session:
        from splitlab.store.tables import DecisionRow

        stored = session.get(DecisionRow, decision["id"])
        assert stored is not None
        assert stored.details["override"] == "ship against the recommendation HOLD_INCONCLUSIVE"
    recorded = [e for e in audit(services, KEY) if e.action == "decision"]
    assert recorded[-1].changes["override"] is True
    assert recorded[-1].reason == "strategic: the old page is retired"

    # the author cannot approve: an editor has no reviewer rights, and nor may an author
    with pytest.raises(PermissionDeniedError):
        approve_decision(services=services, key=KEY, decision_id=decision["id"], reviewer=EDITOR)
    assert status(services, KEY) == "running"

    approved = approve_decision(
        services=services,
        key=KEY,
        decision_id=decision["id"],
        reviewer=REVIEWER,
        comment="agreed with product",
    )
    assert approved["status"] == "applied"
    assert (approved["reviewed_by"], approved["review_comment"]) == ("rita", "agreed with product")
    assert approved["experiment_status"] == "shipped"
    moves = transitions(services)[-3:]
    assert [(a, b, actor) for a, b, actor, _ in moves] == [
        ("running", "stopped", "rita"),
        ("stopped", "readout", "rita"),
        ("readout", "shipped", "rita"),
    ]
    assert all("approved by rita" in reason and "by ed" in reason for *_, reason in moves)
    assert [e.action for e in audit(services, KEY)][-4] == "decision_approved"


def test_a_reviewer_cannot_approve_their_own_override(services: Services) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    decision = ship(services, variant="one-page", actor=REVIEWER)
    before = state(services, KEY)
    with pytest.raises(PermissionDeniedError, match="author"):
        approve_decision(services=services, key=KEY, decision_id=decision["id"], reviewer=REVIEWER)
    assert state(services, KEY) == before
    approved = approve_decision(
        services=services, key=KEY, decision_id=decision["id"], reviewer=SECOND_REVIEWER
    )
    assert approved["experiment_status"] == "shipped"
    # approved once: a second approval is refused
    with pytest.raises(ConflictError, match="applied"):
        approve_decision(services=services, key=KEY, decision_id=decision["id"], reviewer=ADMIN)


def test_an_admin_approving_their_own_override_must_say_why(services: Services) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.KEEP_RUNNING)
    decision = record_decision(
        services=services, key=KEY, action="kill", rationale="budget cut", actor=ADMIN
    )
    assert (decision["status"], decision["override"]) == ("pending_approval", True)
    with pytest.raises(ValidationError) as refused:
        approve_decision(services=services, key=KEY, decision_id=decision["id"], reviewer=ADMIN)
    assert refused.value.details[0]["loc"] == ["comment"]
    done = approve_decision(
        services=services, key=KEY, decision_id=decision["id"], reviewer=ADMIN, comment="on call"
    )
    assert done["experiment_status"] == "killed"


def test_a_pending_decision_blocks_others_until_it_is_rejected(services: Services) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    pending = ship(services, variant="one-page")
    before = state(services, KEY)
    with pytest.raises(ConflictError, match="awaits approval"):
        record_decision(services=services, key=KEY, action="kill", rationale="flat", actor=EDITOR)
    assert state(services, KEY) == before

    rejected = reject_decision(
        services=services, key=KEY, decision_id=pending["id"], reviewer=REVIEWER, comment="no"
    )
    assert (rejected["status"], rejected["experiment_status"]) == ("rejected", "running")
    assert audit(services, KEY)[-1].action == "decision_rejected"
    with pytest.raises(ConflictError):
        approve_decision(services=services, key=KEY, decision_id=pending["id"], reviewer=REVIEWER)
    killed = record_decision(
        services=services, key=KEY, action="kill", rationale="flat", actor=EDITOR
    )
    assert killed["experiment_status"] == "killed"
    assert [d["status"] for d in list_decisions(services=services, key=KEY)] == [
        "applied",
        "rejected",
    ]


def test_an_override_applies_at_once_when_the_policy_does_not_ask_for_approval(
    services: Services,
) -> None:
    make_experiment(services, KEY)
    no_approval_needed(services, KEY)
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    decision = ship(services, variant="two-page")
    assert (decision["status"], decision["override"]) == ("applied", True)
    assert decision["experiment_status"] == "shipped"


def test_without_a_recommendation_a_decision_is_an_override(services: Services) -> None:
    make_experiment(services, KEY, to=Status.READOUT)
    decision = ship(services, variant="one-page")
    assert decision["override"] is True
    assert decision["recommendation_id"] is None
    assert decision["status"] == "pending_approval"


@pytest.mark.parametrize(
    ("code", "variant", "override"),
    [
        (Code.SHIP_GLOBAL, "one-page", False),
        (Code.SHIP_GLOBAL, "two-page", True),  # another variant than the recommended one
        (Code.KILL, "one-page", True),
        (Code.PENDING_UNDERPOWERED, "one-page", True),
        (Code.INVESTIGATE_INVALID_EXPERIMENT, "one-page", True),
    ],
)
def test_which_ships_follow_and_which_override(
    services: Services, code: Code, variant: str, override: bool
) -> None:
    make_experiment(services, KEY, to=Status.READOUT)
    no_approval_needed(services, KEY)
    recommend(services, KEY, code, variant="one-page" if code is Code.SHIP_GLOBAL else None)
    assert ship(services, variant=variant)["override"] is override


def test_a_targeted_ship_follows_only_the_recommended_segments(services: Services) -> None:
    make_experiment(services, KEY, to=Status.READOUT, plan={"segments": ["country"]})
    no_approval_needed(services, KEY)
    segments = [{"name": "country", "value": "DE"}]
    recommend(services, KEY, Code.SHIP_TARGETED_SEGMENTS, variant="one-page", segments=segments)
    with pytest.raises(ValidationError) as refused:
        ship(services, variant="one-page", segments=[{"name": "browser", "value": "x"}])
    assert refused.value.details[0]["loc"] == ["segments", 0, "name"]
    other = ship(services, variant="one-page", segments=[{"name": "country", "value": "FR"}])
    assert other["override"] is True

    make_experiment(services, "again", to=Status.READOUT, plan={"segments": ["country"]})
    recommend(services, "again", Code.SHIP_TARGETED_SEGMENTS, variant="one-page", segments=segments)
    same = ship(services, key="again", variant="one-page", segments=segments)
    assert (same["override"], same["segments"]) == (False, segments)


# ---------------------------------------------------------------- hostile input


HOSTILE: list[tuple[dict[str, Any], type[SplitlabError], list[Any] | None]] = [
    ({"rationale": ""}, ValidationError, ["rationale"]),
    ({"rationale": "   \n "}, ValidationError, ["rationale"]),
    ({"rationale": "x" * 10_001}, ValidationError, ["rationale"]),
    ({"rationale": "nul \x00 inside"}, ValidationError, ["rationale"]),
    ({"rationale": "bell \x07"}, ValidationError, ["rationale"]),
    ({"action": "promote"}, ValidationError, ["action"]),
    ({"variant": "three-page"}, ValidationError, ["variant"]),
    ({"variant": "control"}, ValidationError, ["variant"]),
    ({"variant": "One Page!"}, ValidationError, ["variant"]),
    ({"action": "kill", "variant": "one-page"}, ValidationError, ["variant"]),
    ({"action": "extend"}, ValidationError, ["days"]),
    ({"action": "extend", "days": 0}, ValidationError, ["days"]),
    ({"action": "extend", "days": 10**9}, ValidationError, ["days"]),
    ({"ramp": [{"percent": 50}, {"percent": 25}, {"percent": 100}]}, ValidationError, None),
    ({"ramp": [{"percent": 5}, {"percent": 50}]}, ValidationError, None),
    ({"ramp": [{"percent": 101}]}, ValidationError, None),
    ({"ramp": [{"percent": float("nan")}]}, ValidationError, None),
    ({"ramp": [{"percent": 100, "hold_hours": -1}]}, ValidationError, None),
    ({"ramp": []}, ValidationError, None),
    ({"follows": 987_654}, ValidationError, ["follows"]),
    ({"follows": 2**40}, ValidationError, ["follows"]),
    ({"key": "no-such-experiment"}, NotFoundError, None),
    ({"actor": VIEWER}, PermissionDeniedError, None),
]


@pytest.mark.parametrize(("fields", "error", "loc"), HOSTILE)
def test_hostile_input_is_refused_and_changes_nothing(
    services: Services, fields: dict[str, Any], error: type[SplitlabError], loc: list[Any] | None
) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    before = state(services, KEY)
    with pytest.raises(error) as refused:
        default = {"variant": "one-page"} if fields.get("action", "ship") == "ship" else {}
        ship(services, **(default | fields))
    if loc is not None:
        assert refused.value.details[0]["loc"] == loc
    if fields.get("ramp") is not None and fields["ramp"]:
        assert refused.value.details[0]["loc"][0] == "ramp"
    assert state(services, KEY) == before


@pytest.mark.parametrize(
    ("to", "action", "message"),
    [
        (Status.DRAFT, "ship", "has not run"),
        (Status.READOUT, "rollback", "kill it instead"),
        (Status.STOPPED, "extend", "only a running experiment"),
    ],
)
def test_a_decision_the_state_does_not_allow_is_a_conflict(
    services: Services, to: Status, action: str, message: str
) -> None:
    make_experiment(services, KEY, to=to)
    before = state(services, KEY)
    with pytest.raises(ConflictError, match=message):
        record_decision(
            services=services,
            key=KEY,
            action=action,
            rationale="because",
            actor=EDITOR,
            days=3 if action == "extend" else None,
        )
    assert state(services, KEY) == before


def test_a_decided_experiment_cannot_be_decided_again(services: Services) -> None:
    make_experiment(services, KEY, to=Status.READOUT)
    recommend(services, KEY, Code.KILL)
    record_decision(services=services, key=KEY, action="kill", rationale="worse", actor=EDITOR)
    before = state(services, KEY)
    with pytest.raises(ConflictError, match="already decided"):
        record_decision(services=services, key=KEY, action="kill", rationale="again", actor=EDITOR)
    assert state(services, KEY) == before


def test_a_decision_on_stale_advice_is_refused(services: Services) -> None:
    make_experiment(services, KEY)
    first = recommend(services, KEY, Code.KEEP_RUNNING)
    recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    before = state(services, KEY)
    with pytest.raises(ConflictError, match="no longer the latest"):
        ship(services, variant="one-page", follows=first)
    assert state(services, KEY) == before


def test_forged_decision_ids_are_not_found(services: Services) -> None:
    make_experiment(services, KEY)
    make_experiment(services, "other")
    recommend(services, "other", Code.HOLD_INCONCLUSIVE)
    theirs = ship(services, key="other", variant="one-page")
    before = state(services, KEY)
    for forged in (theirs["id"], 424_242):
        with pytest.raises(NotFoundError):
            approve_decision(services=services, key=KEY, decision_id=forged, reviewer=REVIEWER)
        with pytest.raises(NotFoundError):
            reject_decision(services=services, key=KEY, decision_id=forged, reviewer=REVIEWER)
    assert state(services, KEY) == before
    assert status(services, "other") == "running"


# ---------------------------------------------------------------- concurrency


def _race(calls: list[Any]) -> list[Any]:
    """Run ``calls`` at the same moment in threads; each one's result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # collected and checked below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_of_simultaneous_decisions_exactly_one_applies(services: Services) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    before = len(transitions(services))
    results = _race(
        [
            lambda: ship(services, variant="one-page"),
            lambda: ship(services, variant="one-page", actor=REVIEWER),
            lambda: ship(
                services, variant="one-page", actor=ADMIN, ramp=[{"percent": 50}, {"percent": 100}]
            ),
        ]
    )
    applied = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(applied) == 1, results
    assert len(refused) == 2 and all(isinstance(r, ConflictError) for r in refused), results
    assert len(list_decisions(services=services, key=KEY)) == 1
    # running → stopped → readout → shipped (or rolling_out), once
    assert len(transitions(services)) - before == 3
    assert len([e for e in audit(services, KEY) if e.action == "decision"]) == 1


def test_of_simultaneous_approvals_exactly_one_applies(services: Services) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    pending = ship(services, variant="one-page")
    before = len(transitions(services))
    results = _race(
        [
            lambda reviewer=reviewer: approve_decision(
                services=services, key=KEY, decision_id=pending["id"], reviewer=reviewer
            )
            for reviewer in (REVIEWER, SECOND_REVIEWER)
        ]
    )
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "dict"], results
    assert len(transitions(services)) - before == 3
    assert status(services, KEY) == "shipped"


def test_the_author_may_withdraw_a_pending_decision_another_editor_may_not(
    services: Services,
) -> None:
    make_experiment(services, KEY)
    recommend(services, KEY, Code.HOLD_INCONCLUSIVE)
    pending = ship(services, variant="one-page")
    other_editor = OWNER
    before = state(services, KEY)
    with pytest.raises(PermissionDeniedError, match="reviewer or admin role"):
        reject_decision(
            services=services, key=KEY, decision_id=pending["id"], reviewer=other_editor
        )
    assert state(services, KEY) == before
    withdrawn = reject_decision(
        services=services, key=KEY, decision_id=pending["id"], reviewer=EDITOR, comment="oops"
    )
    assert (withdrawn["status"], withdrawn["reviewed_by"]) == ("rejected", "ed")
    assert status(services, KEY) == "running"

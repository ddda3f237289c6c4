"""What an approval is bound to, who may review, and the guards on starting an experiment."""

from __future__ import annotations

import pytest

from splitlab.domain import Principal, ReviewDecision, Role, Scope, Status, check_transition
from splitlab.domain.review import (
    APPROVAL_BOUND_FIELDS,
    changed_bound_fields,
    check_review,
    check_reviewer,
    config_fingerprint,
)
from splitlab.errors import ConflictError, PermissionDeniedError, TransitionError, ValidationError
from tests.domain.test_lifecycle import complete_spec

VERSIONS = {"conversion": 1}


def test_fingerprint_is_stable_and_hex() -> None:
    first = config_fingerprint(complete_spec(), VERSIONS)
    assert first == config_fingerprint(complete_spec(), dict(VERSIONS))
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("hypothesis", {"hypothesis": "B converts worse"}),
        ("predicted_outcome", {"predicted_outcome": "+5%"}),
        (
            "variants",
            {
                "variants": [
                    {"key": "a", "weight": 0.6, "is_control": True},
                    {"key": "b", "weight": 0.4},
                ]
            },
        ),
        ("metrics", {"metrics": {"primary": "conversion", "guardrails": ["conversion"]}}),
        ("plan", {"plan": {"alpha": 0.1}}),
        ("coverage", {"coverage": 0.5}),
        ("namespace", {"namespace": {"id": "ns", "start": 0, "end": 0.5}}),
        ("seed", {"seed": "another"}),
        ("hash_version", {"hash_version": 1}),
    ],
)
def test_every_bound_field_changes_the_fingerprint(field: str, overrides: dict) -> None:
    before, after = complete_spec(), complete_spec(**overrides)
    assert config_fingerprint(before, VERSIONS) != config_fingerprint(after, VERSIONS)
    assert changed_bound_fields(before, after, VERSIONS, VERSIONS) == [field]


def test_bound_fields_are_the_documented_ones() -> None:
    assert set(APPROVAL_BOUND_FIELDS) == {
        "hypothesis",
        "predicted_outcome",
        "variants",
        "metrics",
        "plan",
        "coverage",
        "namespace",
        "seed",
        "hash_version",
    }


@pytest.mark.parametrize(
    "overrides",
    [{"name": "x"}, {"team": "web"}, {"owner": "someone"}, {"tags": ["t"]}, {"start_at": None}],
)
def test_other_fields_leave_the_fingerprint(overrides: dict) -> None:
    assert config_fingerprint(complete_spec(), VERSIONS) == config_fingerprint(
        complete_spec(**overrides), VERSIONS
    )


def test_a_new_metric_version_changes_the_fingerprint() -> None:
    spec = complete_spec()
    assert config_fingerprint(spec, VERSIONS) != config_fingerprint(spec, {"conversion": 2})
    assert changed_bound_fields(spec, spec, VERSIONS, {"conversion": 2}) == ["metric_versions"]


def reviewer(name: str, role: Role = Role.REVIEWER, scope: Scope | None = None) -> Principal:
    return Principal(username=name, role=role, scope=scope)


def test_a_third_reviewer_may_review() -> None:
    check_reviewer(reviewer=reviewer("rita"), creator="ed", owner="alice", comment="")


@pytest.mark.parametrize(("creator", "owner"), [("rory", "alice"), ("ed", "rory")])
def test_creator_and_owner_may_not_review(creator: str, owner: str) -> None:
    with pytest.raises(PermissionDeniedError, match="creator or owner"):
        check_reviewer(reviewer=reviewer("rory"), creator=creator, owner=owner, comment="fine")


def test_admin_may_review_their_own_with_a_reason() -> None:
    admin = reviewer("alice", Role.ADMIN)
    with pytest.raises(ValidationError, match="must give a reason"):
        check_reviewer(reviewer=admin, creator="alice", owner="bob", comment=" ")
    check_reviewer(reviewer=admin, creator="alice", owner="bob", comment="on-call fix")


@pytest.mark.parametrize(
    "principal", [reviewer("ed", Role.EDITOR), reviewer("rita", scope=Scope.READ)]
)
def test_reviewing_needs_the_reviewer_role_and_scope(principal: Principal) -> None:
    with pytest.raises(PermissionDeniedError, match="reviewer or admin role"):
        check_reviewer(reviewer=principal, creator="x", owner="y", comment="")


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.REVIEW, Status.RUNNING),
        (Status.REVIEW, Status.SCHEDULED),
        (Status.SCHEDULED, Status.RUNNING),
    ],
)
def test_starting_reruns_the_draft_guards(current: Status, target: Status) -> None:
    broken = complete_spec(
        hypothesis="", variants=[{"key": "b", "weight": 0.3}], metrics={"primary": None}
    )
    with pytest.raises(TransitionError, match=f"not ready to be {target}") as info:
        check_transition(spec=broken, current=current, target=target, approved=True)
    assert len(info.value.details["problems"]) == 5


def test_starting_rechecks_unknown_metrics() -> None:
    with pytest.raises(TransitionError, match="unknown metric definitions: conversion"):
        check_transition(
            spec=complete_spec(),
            current=Status.SCHEDULED,
            target=Status.RUNNING,
            approved=True,
            unknown_metrics=["conversion"],
        )


def test_a_scheduled_experiment_needs_a_current_approval_to_run() -> None:
    with pytest.raises(TransitionError, match="approval"):
        check_transition(
            spec=complete_spec(), current=Status.SCHEDULED, target=Status.RUNNING, approved=False
        )


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.REVIEW])
def test_only_an_experiment_in_review_is_reviewed(status: Status) -> None:
    with pytest.raises(ConflictError, match=f"is {status}, not in review"):
        check_review(
            key="exp",
            status=status,
            spec=complete_spec(owner="alice"),
            creator="alice",
            reviewer=reviewer("rita"),
            decision=ReviewDecision.APPROVE,
            comment="",
        )


def test_review_applies_the_reviewer_rules_to_the_owner() -> None:
    with pytest.raises(PermissionDeniedError, match="creator or owner"):
        check_review(
            key="exp",
            status=Status.REVIEW,
            spec=complete_spec(owner="rita"),
            creator="ed",
            reviewer=reviewer("rita"),
            decision=ReviewDecision.REQUEST_CHANGES,
            comment="",
        )


def test_an_approval_needs_a_ready_configuration() -> None:
    with pytest.raises(ConflictError, match="cannot be approved as it is") as info:
        check_review(
            key="exp",
            status=Status.REVIEW,
            spec=complete_spec(hypothesis=" "),
            creator="ed",
            reviewer=reviewer("rita"),
            decision=ReviewDecision.APPROVE,
            comment="",
            unknown_metrics=["conversion"],
        )
    assert len(info.value.details["problems"]) == 2
    assert "unknown metric definitions: conversion" in info.value.message
    check_review(
        key="exp",
        status=Status.REVIEW,
        spec=complete_spec(hypothesis=" "),
        creator="ed",
        reviewer=reviewer("rita"),
        decision=ReviewDecision.REQUEST_CHANGES,
        comment="not yet",
    )

"""The transition table and its guards, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from splitlab.domain import TRANSITIONS, ExperimentSpec, Status, check_transition, draft_problems
from splitlab.domain.experiments import WEIGHT_TOLERANCE
from splitlab.domain.lifecycle import allowed_targets, check_edit
from splitlab.errors import ConflictError, TransitionError, ValidationError

ALLOWED = {
    ("draft", "review"),
    ("review", "draft"),
    ("review", "scheduled"),
    ("review", "running"),
    ("scheduled", "running"),
    ("running", "stopped"),
    ("running", "rolled_back"),
    ("stopped", "readout"),
    ("readout", "rolling_out"),
    ("readout", "shipped"),
    ("readout", "killed"),
    ("rolling_out", "shipped"),
    ("rolling_out", "rolled_back"),
}


def complete_spec(**overrides: object) -> ExperimentSpec:
    data = {
        "key": "exp",
        "hypothesis": "B converts better",
        "variants": [
            {"key": "a", "weight": 0.5, "is_control": True},
            {"key": "b", "weight": 0.5},
        ],
        "metrics": {"primary": "conversion"},
        "start_at": "2026-12-01T00:00:00Z",
    }
    return ExperimentSpec.model_validate(data | overrides)


def test_table_is_exactly_the_documented_one() -> None:
    table = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_every_allowed_transition_passes(current: str, target: str) -> None:
    check_transition(
        spec=complete_spec(), current=Status(current), target=Status(target), approved=True
    )


FORBIDDEN = sorted(
    (a.value, b.value)
    for a, b in itertools.product(Status, Status)
    if (a.value, b.value) not in ALLOWED
)


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_every_forbidden_transition_is_refused(current: str, target: str) -> None:
    with pytest.raises(TransitionError) as info:
        check_transition(
            spec=complete_spec(), current=Status(current), target=Status(target), approved=True
        )
    assert info.value.status == 409
    assert current in info.value.message and target in info.value.message


def test_stopped_experiment_says_clone_it() -> None:
    with pytest.raises(TransitionError, match="clone it"):
        check_transition(
            spec=complete_spec(), current=Status.STOPPED, target=Status.RUNNING, approved=True
        )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"hypothesis": "  "}, "hypothesis"),
        ({"variants": [{"key": "a", "weight": 1.0, "is_control": True}]}, "at least 2 variants"),
        (
            {"variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}]},
            "exactly one control variant is needed, found 0",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 0.5, "is_control": True},
                    {"key": "b", "weight": 0.5, "is_control": True},
                ]
            },
            "exactly one control variant is needed, found 2",
        ),
        (
            {
                "variants": [
                    {"key": "a", "weight": 0.5, "is_control": True},
                    {"key": "b", "weight": 0.4},
                ]
            },
            "weights must sum to 1, they sum to 0.9",
        ),
        ({"metrics": {"primary": None}}, "metrics.primary"),
    ],
)
def test_each_draft_guard_names_its_problem(overrides: dict, expected: str) -> None:
    spec = complete_spec(**overrides)
    with pytest.raises(TransitionError) as info:
        check_transition(spec=spec, current=Status.DRAFT, target=Status.REVIEW, approved=False)
    assert expected in info.value.message
    assert len(info.value.details["problems"]) == 1


def test_unknown_metric_blocks_review() -> None:
    with pytest.raises(TransitionError, match="unknown metric definitions: conversion"):
        check_transition(
            spec=complete_spec(),
            current=Status.DRAFT,
            target=Status.REVIEW,
            approved=False,
            unknown_metrics=["conversion"],
        )


@pytest.mark.parametrize("target", [Status.RUNNING, Status.SCHEDULED])
def test_leaving_review_forward_needs_approval(target: Status) -> None:
    with pytest.raises(TransitionError, match="approval by a reviewer"):
        check_transition(spec=complete_spec(), current=Status.REVIEW, target=target, approved=False)


def test_review_back_to_draft_needs_no_approval() -> None:
    check_transition(
        spec=complete_spec(), current=Status.REVIEW, target=Status.DRAFT, approved=False
    )


def test_scheduling_needs_a_start_time() -> None:
    with pytest.raises(TransitionError, match="start_at"):
        check_transition(
            spec=complete_spec(start_at=None),
            current=Status.REVIEW,
            target=Status.SCHEDULED,
            approved=True,
        )


def test_complete_draft_has_no_problems() -> None:
    assert draft_problems(complete_spec()) == []


def test_allowed_targets_read_the_table() -> None:
    for status in Status:
        assert allowed_targets(status) == TRANSITIONS[status]
    assert allowed_targets(Status.SHIPPED) == frozenset()


RESTRICTED = [Status.SCHEDULED, Status.RUNNING, Status.ROLLING_OUT]
OPEN = [Status.DRAFT, Status.REVIEW]
ENDED = [s for s in Status if s not in RESTRICTED and s not in OPEN]


def reweighted(control: float, treatment: float, **overrides: object) -> ExperimentSpec:
    variants = [
        {"key": "a", "weight": control, "is_control": True},
        {"key": "b", "weight": treatment},
    ]
    return complete_spec(variants=variants, **overrides)


@pytest.mark.parametrize("status", OPEN)
def test_drafts_and_reviews_take_any_edit(status: Status) -> None:
    after = complete_spec(hypothesis="changed", variants=[{"key": "c", "weight": 0.2}])
    check_edit(key="exp", status=status, before=complete_spec(), after=after, fields=["hypothesis"])


@pytest.mark.parametrize("status", ENDED)
def test_ended_experiments_take_no_edit(status: Status) -> None:
    with pytest.raises(ConflictError, match="can no longer change") as info:
        check_edit(
            key="exp", status=status, before=complete_spec(), after=complete_spec(), fields=[]
        )
    assert info.value.details == {"status": status}


@pytest.mark.parametrize("status", RESTRICTED)
def test_scheduled_and_live_take_coverage_and_weights(status: Status) -> None:
    after = reweighted(0.7, 0.3, coverage=0.5)
    check_edit(
        key="exp",
        status=status,
        before=complete_spec(),
        after=after,
        fields=["coverage", "variants"],
    )


@pytest.mark.parametrize("status", RESTRICTED)
def test_scheduled_and_live_refuse_other_fields_and_variant_changes(status: Status) -> None:
    after = complete_spec(
        hypothesis="changed",
        name="renamed",
        variants=[{"key": "a", "weight": 0.5, "is_control": True}, {"key": "c", "weight": 0.5}],
    )
    with pytest.raises(ConflictError, match="only coverage and variant weights") as info:
        check_edit(
            key="exp",
            status=status,
            before=complete_spec(),
            after=after,
            fields=["name", "hypothesis", "variants"],
        )
    assert info.value.details["fields"] == ["hypothesis", "name", "variants"]


def test_a_field_sent_unchanged_is_no_edit() -> None:
    check_edit(
        key="exp",
        status=Status.RUNNING,
        before=complete_spec(),
        after=complete_spec(),
        fields=["hypothesis"],
    )


def test_live_weights_must_still_sum_to_one() -> None:
    with pytest.raises(ValidationError, match="weights must sum to 1"):
        check_edit(
            key="exp",
            status=Status.RUNNING,
            before=complete_spec(),
            after=reweighted(0.7, 0.4),
            fields=["variants"],
        )
    within_tolerance = reweighted(0.7, 0.3 + WEIGHT_TOLERANCE / 2)
    check_edit(
        key="exp",
        status=Status.RUNNING,
        before=complete_spec(),
        after=within_tolerance,
        fields=["variants"],
    )

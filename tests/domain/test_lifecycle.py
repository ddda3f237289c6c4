"""The transition table and its guards, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from splitlab.domain import TRANSITIONS, ExperimentSpec, Status, check_transition, draft_problems
from splitlab.errors import TransitionError

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

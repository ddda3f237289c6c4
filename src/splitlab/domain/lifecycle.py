"""The experiment lifecycle: one explicit transition table and the guards on it."""

from __future__ import annotations

from collections.abc import Iterable

from splitlab.domain.enums import Status
from splitlab.domain.experiments import WEIGHT_TOLERANCE, ExperimentSpec
from splitlab.errors import TransitionError

S = Status
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.DRAFT: frozenset({S.REVIEW}),
    S.REVIEW: frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING}),
    S.SCHEDULED: frozenset({S.RUNNING}),
    S.RUNNING: frozenset({S.STOPPED, S.ROLLED_BACK}),
    S.STOPPED: frozenset({S.READOUT}),
    S.READOUT: frozenset({S.ROLLING_OUT, S.SHIPPED, S.KILLED}),
    S.ROLLING_OUT: frozenset({S.SHIPPED, S.ROLLED_BACK}),
    S.SHIPPED: frozenset(),
    S.KILLED: frozenset(),
    S.ROLLED_BACK: frozenset(),
}

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
LIVE = frozenset({S.RUNNING, S.ROLLING_OUT})
"""States in which units are being assigned: variants and metrics are frozen."""

EDITABLE_WHEN_LIVE = frozenset({"coverage", "weights"})

STARTING = frozenset({S.SCHEDULED, S.RUNNING})
"""Targets that need an approved, complete configuration (the draft guards run again)."""


def allowed_targets(status: Status) -> frozenset[Status]:
    return TRANSITIONS[status]


def draft_problems(spec: ExperimentSpec) -> list[str]:
    """What stops a draft from going to review; empty when it is complete."""
    problems = []
    if not spec.hypothesis.strip():
        problems.append("hypothesis: an experiment needs a hypothesis before review")
    if len(spec.variants) < 2:
        problems.append(f"variants: at least 2 variants are needed, found {len(spec.variants)}")
    controls = sum(v.is_control for v in spec.variants)
    if controls != 1:
        problems.append(f"variants: exactly one control variant is needed, found {controls}")
    total = sum(v.weight for v in spec.variants)
    if spec.variants and abs(total - 1) > WEIGHT_TOLERANCE:
        problems.append(f"variants: weights must sum to 1, they sum to {total:g}")
    if not spec.metrics.primary:
        problems.append("metrics.primary: one primary metric is needed")
    return problems


def check_transition(
    *,
    spec: ExperimentSpec,
    current: Status,
    target: Status,
    approved: bool,
    unknown_metrics: Iterable[str] = (),
) -> None:
    """Raise ``TransitionError`` with a clear reason unless ``current → target`` may happen.

    ``approved`` says whether the latest review request carries an approval of the current
    configuration (its fingerprint, see ``domain.review``). The draft guards run again on
    every transition into scheduled or running: the configuration may have been edited in
    review.
    """
    if target not in TRANSITIONS[current]:
        if current is S.STOPPED and target in (S.RUNNING, S.SCHEDULED):
            raise TransitionError(
                f"cannot go from stopped to {target}: a stopped experiment never runs again; "
                "clone it to run it anew",
                details={"from": current, "to": target},
            )
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (terminal state)"
        raise TransitionError(
            f"cannot go from {current} to {target}; allowed: {allowed}",
            details={"from": current, "to": target},
        )
    if current is S.DRAFT or target in STARTING:
        problems = draft_problems(spec)
        missing = sorted(set(unknown_metrics))
        if missing:
            problems.append(f"metrics: unknown metric definitions: {', '.join(missing)}")
        if problems:
            what = (
                "the draft is not ready for review"
                if current is S.DRAFT
                else f"the experiment is not ready to be {target}"
            )
            raise TransitionError(
                f"{what}: " + "; ".join(problems),
                details={"from": current, "to": target, "problems": problems},
            )
    if current in (S.REVIEW, S.SCHEDULED) and target in STARTING and not approved:
        raise TransitionError(
            "leaving review needs an approval by a reviewer (role reviewer or admin) of the "
            "current configuration",
            details={"from": current, "to": target},
        )
    if target is S.SCHEDULED and spec.start_at is None:
        raise TransitionError(
            "a scheduled experiment needs start_at", details={"from": current, "to": target}
        )

"""The experiment lifecycle: one explicit transition table and the guards on it."""

from __future__ import annotations

from collections.abc import Iterable

from splitlab.domain.enums import Status
from splitlab.domain.experiments import WEIGHT_TOLERANCE, ExperimentSpec
from splitlab.errors import ConflictError, TransitionError, ValidationError

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

ENDED = TERMINAL | {S.STOPPED, S.READOUT}
"""States in which the configuration can no longer change."""

ANALYSING = LIVE | {S.STOPPED, S.READOUT}
"""Started and not yet decided: analysed with the metric versions pinned when they started."""

AWAITING_START = frozenset({S.REVIEW, S.SCHEDULED})
"""States in which an approval counts: a change of the approved configuration voids it."""

EDITABLE_WHEN_LIVE = frozenset({"coverage", "variants"})
"""What a scheduled or live experiment may still change: its coverage and its variants'
weights (nothing else of a variant)."""
EDITABLE_ALWAYS = frozenset({"costs"})
"""Bookkeeping that changes nothing about what is tested, on whom or how it is read: its
costs, known only as the work is done, may be recorded in any state (the audit log keeps
every change)."""

STARTING = frozenset({S.SCHEDULED, S.RUNNING})
"""Targets that need an approved, complete configuration (the draft guards run again)."""


def allowed_targets(status: Status) -> frozenset[Status]:
    """The states an experiment in ``status`` may move to (empty for a terminal state)."""
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


def readiness_problems(spec: ExperimentSpec, unknown_metrics: Iterable[str] = ()) -> list[str]:
    """What stops the configuration from being approved or started: the draft guards, and
    metrics without a definition; empty when it is ready."""
    problems = draft_problems(spec)
    missing = sorted(set(unknown_metrics))
    if missing:
        problems.append(f"metrics: unknown metric definitions: {', '.join(missing)}")
    return problems


def _only_weights_changed(before: ExperimentSpec, after: ExperimentSpec) -> bool:
    strip = [v.model_dump(exclude={"weight"}) for v in before.variants]
    return strip == [v.model_dump(exclude={"weight"}) for v in after.variants]


def check_edit(
    *,
    key: str,
    status: Status,
    before: ExperimentSpec,
    after: ExperimentSpec,
    fields: Iterable[str],
) -> None:
    """Raise unless an edit of ``fields`` turning ``before`` into ``after`` may happen in
    ``status``: drafts and experiments in review take any change; scheduled and live ones
    only ``EDITABLE_WHEN_LIVE`` (their weights still summing to 1); ended ones nothing —
    except ``EDITABLE_ALWAYS``, which any state takes."""
    changed = {name for name in fields if getattr(before, name) != getattr(after, name)}
    if changed and changed <= EDITABLE_ALWAYS:
        return
    if status in ENDED:
        raise ConflictError(
            f"experiment {key!r} is {status}: its configuration can no longer change",
            details={"status": status},
        )
    if status not in LIVE and status is not S.SCHEDULED:
        return
    names = sorted(
        name
        for name in fields
        if name not in EDITABLE_WHEN_LIVE | EDITABLE_ALWAYS
        and getattr(before, name) != getattr(after, name)
    )
    if not _only_weights_changed(before, after):
        names.append("variants")
    if names:
        raise ConflictError(
            f"experiment {key!r} is {status}: only coverage and variant weights may change "
            f"(tried to change {', '.join(names)})",
            details={"status": status, "fields": names},
        )
    if abs(sum(v.weight for v in after.variants) - 1) > WEIGHT_TOLERANCE:
        raise ValidationError(
            "variant weights must sum to 1",
            details=[{"loc": ["variants"], "msg": "weights must sum to 1"}],
        )


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
    allowed_here = allowed_targets(current)
    if target not in allowed_here:
        if current is S.STOPPED and target in (S.RUNNING, S.SCHEDULED):
            raise TransitionError(
                f"cannot go from stopped to {target}: a stopped experiment never runs again; "
                "clone it to run it anew",
                details={"from": current, "to": target},
            )
        allowed = ", ".join(sorted(allowed_here)) or "none (terminal state)"
        raise TransitionError(
            f"cannot go from {current} to {target}; allowed: {allowed}",
            details={"from": current, "to": target},
        )
    if current is S.DRAFT or target in STARTING:
        problems = readiness_problems(spec, unknown_metrics)
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

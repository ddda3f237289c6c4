"""Review integrity: what an approval is bound to, and who may give one.

An approval approves one configuration, identified by its fingerprint: a hash of the fields
that decide what the experiment tests and on whom (``APPROVAL_BOUND_FIELDS``) plus the
version of every metric definition it uses. Leaving review (and starting a scheduled
experiment) needs an approval whose fingerprint is the current one; any edit that changes the
fingerprint voids the approval.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from splitlab.domain.enums import ReviewDecision, Role, Status
from splitlab.domain.experiments import ExperimentSpec
from splitlab.domain.lifecycle import readiness_problems
from splitlab.domain.principal import Principal
from splitlab.errors import ConflictError, PermissionDeniedError, ValidationError

APPROVAL_BOUND_FIELDS = (
    "hypothesis",
    "predicted_outcome",
    "variants",
    "metrics",
    "plan",
    "coverage",
    "namespace",
    "seed",
    "hash_version",
)
"""What a reviewer approves: the hypothesis, the arms, the metrics, the analysis plan and the
targeting (coverage, namespace and randomisation). Name, team, tags, owner and the schedule
can change without a new review."""

MetricVersions = Mapping[str, int | None]
"""Metric key → the version of its definition the experiment uses (None: unknown metric)."""


def bound_config(spec: ExperimentSpec, metric_versions: MetricVersions) -> dict[str, Any]:
    """The canonical configuration an approval is bound to, as plain JSON data."""
    config = spec.model_dump(mode="json", include=set(APPROVAL_BOUND_FIELDS))
    config["metric_versions"] = {
        key: metric_versions.get(key) for key in sorted(set(spec.metrics.all_keys()))
    }
    return config


def config_fingerprint(spec: ExperimentSpec, metric_versions: MetricVersions) -> str:
    """SHA-256 of the canonical JSON of ``bound_config``."""
    canonical = json.dumps(
        bound_config(spec, metric_versions), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def changed_bound_fields(
    before: ExperimentSpec,
    after: ExperimentSpec,
    versions_before: MetricVersions,
    versions_after: MetricVersions,
) -> list[str]:
    """The approval-bound fields that differ, in ``APPROVAL_BOUND_FIELDS`` order
    (``metric_versions`` last)."""
    old, new = bound_config(before, versions_before), bound_config(after, versions_after)
    return [name for name in (*APPROVAL_BOUND_FIELDS, "metric_versions") if old[name] != new[name]]


def check_reviewer(*, reviewer: Principal, creator: str, owner: str, comment: str) -> None:
    """Raise unless ``reviewer`` may review an experiment made by ``creator``, owned by ``owner``.

    Self-review is judged against the immutable creator as well as the editable owner, so
    handing the experiment to someone else by editing ``owner`` does not let its author
    approve it. An admin may approve their own experiment, with a reason.
    """
    if not reviewer.can_review():
        raise PermissionDeniedError(
            "reviewing needs the reviewer or admin role", details={"role": reviewer.role}
        )
    own = reviewer.username in {name for name in (creator, owner) if name}
    if not own:
        return
    if reviewer.role is not Role.ADMIN:
        raise PermissionDeniedError(
            "the creator or owner cannot review their own experiment (an admin may, with a reason)",
            details={"reviewer": reviewer.username, "created_by": creator, "owner": owner},
        )
    if not comment.strip():
        raise ValidationError(
            "an admin reviewing their own experiment must give a reason",
            details=[
                {"loc": ["comment"], "msg": "required when the reviewer is the creator or owner"}
            ],
        )


def check_review(
    *,
    key: str,
    status: Status,
    spec: ExperimentSpec,
    creator: str,
    reviewer: Principal,
    decision: ReviewDecision,
    comment: str,
    unknown_metrics: Iterable[str] = (),
) -> None:
    """Raise unless ``reviewer`` may record ``decision`` on experiment ``key`` now: it is in
    review, the reviewer may review it (``check_reviewer``), and an approval approves a
    configuration that is ready to start (``lifecycle.readiness_problems``)."""
    if status is not Status.REVIEW:
        raise ConflictError(
            f"experiment {key!r} is {status}, not in review", details={"status": status}
        )
    check_reviewer(reviewer=reviewer, creator=creator, owner=spec.owner, comment=comment)
    if decision is not ReviewDecision.APPROVE:
        return
    problems = readiness_problems(spec, unknown_metrics)
    if problems:
        raise ConflictError(
            f"experiment {key!r} cannot be approved as it is: " + "; ".join(problems),
            details={"problems": problems},
        )

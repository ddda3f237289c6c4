"""The canary monitor's state: control against the canary on error rate, latency and quality,
with always-valid bounds, the decision engine's advice and how automatic rollback works.

Read from what is stored — the newest snapshot and recommendation — so the monitor's live
stream (``/canary/{key}/events``) can re-read it every few seconds cheaply.  The bounds are
the engine's own (:func:`splitlab.decisions.evidence.comparisons`): a fixed-horizon interval
widened to the asymptotic confidence sequence of :func:`splitlab.stats.sequential_test`
(tightest at the policy's ``sequential.tuning`` units), which holds at every look, so
watching it refresh does not inflate false alarms; sequential-engine results are kept as
they are.

**Automatic rollback** is the scheduler's guardrail auto-stop (``decisions.scheduler``): a
running experiment whose recommendation is ``ROLLBACK`` goes to ``rolled_back`` at the next
tick; a ramp whose guardrails breach is rolled back.  New data reaches the recommendation
with the server's analysis refresh, so the longest wait after the evidence arrives is
``SPLITLAB_ANALYSIS_REFRESH_SECONDS`` + ``SPLITLAB_SCHEDULER_SECONDS`` (plus the analysis's
own run time) — 900 s + 30 s by default.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from splitlab.analysis.service import latest
from splitlab.analysis.snapshot import Snapshot
from splitlab.decisions.evidence import comparisons, finite
from splitlab.decisions.ml import metric_defs, metric_roles
from splitlab.decisions.service import recommend_experiment, resolve_policy
from splitlab.domain import Principal, Status
from splitlab.errors import ConflictError, NotFoundError, PermissionDeniedError, SplitlabError
from splitlab.store.audit import audit_to_dict, list_audit
from splitlab.store.experiments import get_experiment, spec_from_row

if TYPE_CHECKING:
    from splitlab.services import Services

ROLLBACK_ACTIONS = ("auto_stop", "ramp_rollback", "decision", "transition", "ramp_step")
"""Audit actions the monitor lists (what happened to the rollout)."""


def rollback_delay(services: Services) -> dict[str, Any]:
    """The documented automatic-rollback delay from the settings (module docstring)."""
    settings = services.settings
    tick, refresh = settings.scheduler_seconds, settings.analysis_refresh_seconds
    enabled = tick > 0
    return {
        "enabled": enabled,
        "scheduler_seconds": tick,
        "analysis_refresh_seconds": refresh,
        "max_delay_seconds": (tick + refresh) if enabled and refresh > 0 else None,
        "text": (
            f"Automatic rollback: the scheduler checks every {tick:g} s and the analysis "
            f"refreshes every {refresh:g} s, so a guardrail breach rolls back within "
            f"{tick + refresh:g} s of the data arriving (plus the analysis's run time)."
            if enabled and refresh > 0
            else (
                f"Automatic rollback: the scheduler checks every {tick:g} s, but the background "
                "analysis refresh is off (SPLITLAB_ANALYSIS_REFRESH_SECONDS=0): new data is "
                "judged only when someone refreshes the analysis."
                if enabled
                else "Automatic rollback is off in this server (SPLITLAB_SCHEDULER_SECONDS=0): "
                "run `splitlab scheduler tick` from cron, or roll back by hand."
            )
        ),
    }


def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no data"
    if low > 0 or high < 0:
        worse = (high < 0) == higher_is_better
        return "worse" if worse else "better"
    return "no evidence of a change"


def _metric_keys(snapshot: Snapshot) -> list[str]:
    defs = metric_defs(snapshot)
    roles = metric_roles(defs)
    wanted = [*roles.errors, *roles.latency]
    if roles.quality:
        wanted.append(roles.quality)
    wanted = list(dict.fromkeys(wanted))
    return wanted or list(defs)


def canary_rows(snapshot: Snapshot, *, tuning: float) -> list[dict[str, Any]]:
    """Per canary (treatment) × watched metric: both arms, the effect with the snapshot's CI
    and the always-valid one, its always-valid p-value and a verdict in words."""
    defs = metric_defs(snapshot)
    keys = _metric_keys(snapshot)
    rows = [r for r in snapshot.overall() if r.metric in keys]
    rows.sort(key=lambda r: (keys.index(r.metric), r.variant))
    alpha = float(snapshot.settings.get("alpha", 0.05))
    data = comparisons(rows, engine=snapshot.engine, alpha=alpha, tuning=tuning)
    out = []
    for i, row in enumerate(rows):
        metric = defs[row.metric]
        out.append(
            {
                "metric": row.metric,
                "label": metric.label,
                "variant": row.variant,
                "higher_is_better": metric.higher_is_better,
                "control_mean": finite(row.control_mean),
                "canary_mean": finite(row.treatment_mean),
                "control_n": finite(row.control_n),
                "canary_n": finite(row.treatment_n),
                "rel_effect": finite(row.rel_effect),
                "ci": [finite(row.rel_ci_low), finite(row.rel_ci_high)],
                "always_valid_ci": [finite(data.av_rel_low[i]), finite(data.av_rel_high[i])],
                "always_valid_p": finite(data.av_p[i]),
                "margin": finite(row.margin),
                "margin_scale": row.margin_scale.value if row.margin_scale else None,
                "verdict": _verdict(
                    float(data.av_abs_low[i]), float(data.av_abs_high[i]), metric.higher_is_better
                ),
                "reason": row.reason,
            }
        )
    return out


def canary_state(*, services: Services, key: str) -> dict[str, Any]:
    """Everything the canary monitor shows (404 for an unknown experiment); ``version``
    changes whenever anything shown changes (the live stream sends an update then)."""
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        spec = spec_from_row(row)
        status = Status(row.status)
        audit = [
            audit_to_dict(e)
            for e in list_audit(session=session, entity="experiment", entity_key=key, limit=50)
            if e.action in ROLLBACK_ACTIONS
        ][:10]
    try:
        snapshot: Snapshot | None = latest(services=services, key=key)
    except NotFoundError:
        snapshot = None
    recommendation = None
    if snapshot is not None:
        try:
            recommendation = recommend_experiment(services=services, key=key).to_json()
        except SplitlabError:
            recommendation = None
    tuning = resolve_policy(services=services, key=key).sequential.tuning
    rows = canary_rows(snapshot, tuning=tuning) if snapshot is not None else []
    control = next((v for v in spec.variants if v.is_control), spec.variants[0])
    code = recommendation["code"] if recommendation else None
    last_audit = audit[0]["id"] if audit else 0
    snapshot_id = snapshot.snapshot_id if snapshot is not None else None
    return {
        "experiment": key,
        "name": row.name,
        "type": row.type,
        "status": status.value,
        "control": control.key,
        "variants": [
            {"key": v.key, "weight": v.weight, "is_control": v.is_control, "payload": v.payload}
            for v in spec.variants
        ],
        "snapshot": None
        if snapshot is None
        else {
            "id": snapshot_id,
            "created_at": snapshot.created_at.isoformat(),
            "engine": snapshot.engine.value,
            "alpha": snapshot.settings.get("alpha", 0.05),
            "units": [u.to_json() for u in snapshot.units],
            "tuning": tuning,
        },
        "rows": rows,
        "recommendation": recommendation,
        "rollback_recommended": code == "ROLLBACK",
        "rolled_back": status is Status.ROLLED_BACK,
        "can_roll_back": status in (Status.RUNNING, Status.ROLLING_OUT),
        "automatic": rollback_delay(services),
        "audit": audit,
        "version": f"{snapshot_id}:{code}:{status.value}:{last_audit}",
    }


def roll_back(*, services: Services, key: str, reason: str, actor: Principal) -> str:
    """Roll the canary back by the existing paths: a running experiment through a ``rollback``
    decision (``decisions.actions.record_decision``: editor role, rationale, audited; it may
    wait for a reviewer when it overrides the recommendation and the policy says so), a ramp
    in progress through ``decisions.rollout.rollback_rollout``.  Returns the outcome
    (``rolled_back``, ``pending_approval``); 409 in any other state."""
    from splitlab.decisions.actions import record_decision
    from splitlab.decisions.rollout import rollback_rollout

    if not actor.can_edit():
        raise PermissionDeniedError("rolling back needs an editor role")
    with services.sessions() as session:
        status = Status(get_experiment(session=session, key=key).status)
    if status is Status.ROLLING_OUT:
        rollback_rollout(services=services, key=key, reason=reason, actor=actor)
        return "rolled_back"
    if status is not Status.RUNNING:
        raise ConflictError(
            f"experiment {key!r} is {status.value}: only a running canary or a ramp in "
            "progress can be rolled back",
            details={"status": status.value},
        )
    made = record_decision(
        services=services, key=key, action="rollback", rationale=reason, actor=actor
    )
    return "pending_approval" if made["status"] == "pending_approval" else "rolled_back"

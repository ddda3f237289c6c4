"""The experiment page (``/experiments/{key}``), its variant pages and its actions.

Server-rendered from the stored snapshot, the decision engine's recommendation and the
store's audit trail; each page has a JSON twin (``?format=json``).  Actions are POST forms
with a CSRF token and a reason, offered only to roles that may use them; the routes check
the role again, so a forged post changes nothing (403).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from splitlab.analysis import views
from splitlab.analysis.novelty import exposure_day_view
from splitlab.analysis.render import render_markdown
from splitlab.analysis.service import analyze, latest
from splitlab.analysis.snapshot import Snapshot
from splitlab.api.deps import ServicesDep
from splitlab.api.sessions import read_session
from splitlab.decisions.actions import (
    approve_decision,
    list_decisions,
    record_decision,
    reject_decision,
)
from splitlab.decisions.readout import build_readout
from splitlab.decisions.recommendation import Recommendation
from splitlab.decisions.service import recommend_experiment
from splitlab.domain import Principal, ReviewDecision, Role, Status
from splitlab.domain.lifecycle import ANALYSING, LIVE
from splitlab.domain.limits import MAX_QUERY_TEXT
from splitlab.errors import NotFoundError, PermissionDeniedError, SplitlabError, ValidationError
from splitlab.services import Services
from splitlab.store import experiments as repo
from splitlab.store.audit import audit_to_dict, list_audit
from splitlab.web import experiment_novelty as nov
from splitlab.web import experiment_segments as segs
from splitlab.web import experiment_view as ev
from splitlab.web.common import check_csrf, page, viewer
from splitlab.web.experiment_forms import (
    form_text,
    number,
    ramp,
    schedule_patch,
    weights_patch,
)
from splitlab.web.factorial_view import interaction_plot

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

REFRESH_SECONDS = 30
"""How often a running experiment's page fetches its numbers again."""


@dataclass(frozen=True)
class Action:
    """One action of the page: who may use it, in which states, what the dialog asks."""

    name: str
    label: str
    role: Role
    statuses: frozenset[Status] | None
    """States it applies in (None: any)."""
    confirm: str
    reason_required: bool = False
    danger: bool = False
    fields: tuple[str, ...] = ()
    """Extra inputs the dialog shows: ``new_key``, ``ramp``, ``days``, ``schedule``,
    ``weights``."""


S = Status
ACTIONS: tuple[Action, ...] = (
    Action("request_review", "Request review", Role.EDITOR, frozenset({S.DRAFT}),
           "Send this experiment to review? Reviewers will be asked to approve it."),
    Action("approve", "Approve", Role.REVIEWER, frozenset({S.REVIEW}),
           "Approve this configuration? The approval is bound to it as it is now."),
    Action("request_changes", "Request changes", Role.REVIEWER, frozenset({S.REVIEW}),
           "Send it back to draft with your comments?", reason_required=True),
    Action("start", "Start", Role.EDITOR, frozenset({S.REVIEW, S.SCHEDULED}),
           "Start assigning units to the variants now?"),
    Action("stop", "Stop", Role.EDITOR, frozenset({S.RUNNING}),
           "Stop the experiment? Units stop being assigned; the analysis keeps its data.",
           danger=True),
    Action("readout", "Move to readout", Role.EDITOR, frozenset({S.STOPPED}),
           "Move to readout, where the team decides?"),
    Action("ship", "Ship", Role.EDITOR, frozenset({S.RUNNING, S.STOPPED, S.READOUT}),
           "Ship a variant to everyone — at once, or by a ramp of traffic percentages. An "
           "override of the recommendation may wait for a reviewer's approval.",
           reason_required=True, fields=("variant", "ramp")),
    Action("kill", "Kill", Role.EDITOR, frozenset({S.RUNNING, S.STOPPED, S.READOUT}),
           "Kill it: no variant ships.", reason_required=True, danger=True),
    Action("rollback", "Roll back", Role.EDITOR, frozenset({S.RUNNING, S.ROLLING_OUT}),
           "Roll back now: every unit returns to control.", reason_required=True, danger=True),
    Action("schedule", "Schedule", Role.EDITOR, frozenset({S.REVIEW}),
           "Schedule the approved experiment: the scheduler starts it at the start time (and "
           "stops it at the end time, if given). Times are UTC.", fields=("schedule",)),
    Action("traffic", "Configure traffic split", Role.EDITOR, frozenset({S.DRAFT, S.RUNNING}),
           "Change each variant's share of the traffic (percent, summing to 100). Units already "
           "assigned keep their variant; while running only the weights may change.",
           reason_required=True, fields=("weights",)),
    Action("extend", "Extend", Role.EDITOR, frozenset({S.RUNNING}),
           "Keep it running longer?", reason_required=True, fields=("days",)),
    Action("note", "Add note", Role.EDITOR, None, "Add a note to the experiment's timeline.",
           reason_required=True),
    Action("clone", "Clone", Role.EDITOR, None, "Copy the configuration into a new draft.",
           fields=("new_key",)),
    Action("approve_decision", "Approve decision", Role.REVIEWER, None,
           "Approve the pending decision and apply it now?", fields=("decision",)),
    Action("reject_decision", "Reject decision", Role.REVIEWER, None,
           "Reject the pending decision? The experiment stays as it is.",
           reason_required=True, danger=True, fields=("decision",)),
    Action("refresh", "Refresh analysis", Role.EDITOR, frozenset(ANALYSING),
           "Recompute the analysis from the warehouse now?"),
)  # fmt: skip
BY_NAME = {a.name: a for a in ACTIONS}
DECISION_ACTIONS = {"ship", "kill", "rollback", "extend"}
"""Recorded through ``decisions.actions.record_decision`` (which may hold an override for
approval)."""
PENDING_ACTIONS = {"approve_decision", "reject_decision"}
"""Offered only while a decision awaits approval."""


def _may(principal: Principal | None, action: Action) -> bool:
    if principal is None or not principal.can_edit():
        return False
    return principal.role.at_least(action.role)


def available_actions(
    principal: Principal | None, status: Status, *, pending: bool = False
) -> list[Action]:
    """The actions this viewer may use on an experiment in ``status`` (none for a viewer);
    ``pending``: a decision awaits approval (no new decision until it is settled)."""
    out = []
    for action in ACTIONS:
        if not _may(principal, action):
            continue
        if action.statuses is not None and status not in action.statuses:
            continue
        if (action.name in PENDING_ACTIONS) != pending and (
            action.name in PENDING_ACTIONS or action.name in DECISION_ACTIONS
        ):
            continue
        out.append(action)
    return out


def _snapshot(services: Services, key: str, status: Status) -> Snapshot | None:
    """The analysis to show: analysed now for a started experiment (a cache hit when data and
    settings are unchanged), else the newest stored one, else none."""
    if status in ANALYSING:
        return analyze(services=services, key=key)
    try:
        return latest(services=services, key=key)
    except NotFoundError:
        return None


def _recommendation(services: Services, key: str) -> dict[str, Any] | None:
    try:
        return dict(recommend_experiment(services=services, key=key).to_json())
    except SplitlabError as exc:
        log.info("no recommendation for %s: %s", key, exc)
        return None


def _readout(snapshot: Snapshot, recommendation: dict[str, Any] | None, spec: Any) -> Any:
    """The deterministic readout when there is a recommendation, else the analysis's
    Markdown."""
    if recommendation is not None:
        made = build_readout(
            snapshot=snapshot,
            recommendation=Recommendation.model_validate(recommendation),
            spec=spec,
        )
        return {"kind": "readout", **made.to_json()}
    return {"kind": "markdown", "text": render_markdown(snapshot)}


def _segment_filter(segment: str | None, value: str | None) -> tuple[str | None, str | None]:
    if segment is not None and not segment.strip():
        segment = None
    return segment, (value if segment else None)


def experiment_context(
    *,
    services: Services,
    key: str,
    principal: Principal | None,
    segment: str | None = None,
    value: str | None = None,
    results_only: bool = False,
    cells: tuple[str | None, str | None] = (None, None),
    adhoc: str | None = None,
) -> dict[str, Any]:
    """Everything the experiment page shows, as plain data (the JSON twin's content);
    ``results_only``: just what the results table needs (the running page's refresh);
    ``cells``: the metric and treatment the crossed-segment grids show; ``adhoc``: an ad-hoc
    breakdown to add (``a,b``, exploratory)."""
    with services.sessions() as session:
        row = repo.get_experiment(session=session, key=key)
        experiment = repo.experiment_to_dict(row)
        spec = repo.spec_from_row(row)
        status = Status(row.status)
        audit = [
            audit_to_dict(e)
            for e in list_audit(session=session, entity="experiment", entity_key=key, limit=100)
            if not results_only
        ]
        notes = (
            []
            if results_only
            else [repo.note_to_dict(n) for n in repo.list_notes(session=session, key=key)]
        )
    snapshot = _snapshot(services, key, status)
    wanted = snapshot is not None and not results_only
    if snapshot is not None and wanted:  # the days-since-exposure view, computed on demand
        snapshot = exposure_day_view(services=services, snapshot=snapshot)
    recommendation = _recommendation(services, key) if wanted else None
    decisions = [] if results_only else list_decisions(services=services, key=key)
    pending = next((d for d in decisions if d["status"] == "pending_approval"), None)
    context: dict[str, Any] = {
        "experiment": experiment,
        "status": status.value,
        "live": status in LIVE,
        "recommendation": recommendation,
        "decisions": decisions,
        "pending": pending,
        "audit": audit,
        "notes": notes,
        "actions": [
            {
                "name": a.name,
                "label": a.label,
                "confirm": a.confirm,
                "danger": a.danger,
                "reason_required": a.reason_required,
                "fields": list(a.fields),
            }
            for a in available_actions(principal, status, pending=pending is not None)
        ],
        "variants": [v.key for v in spec.variants],
        "segment": segment,
        "segment_value": value,
        "snapshot": None,
        "refresh_seconds": REFRESH_SECONDS,
    }
    if snapshot is None:
        return context
    if segment is None:
        rows = list(snapshot.overall())
    else:
        rows = [
            r
            for r in snapshot.results
            if r.segment is not None
            and r.segment.name == segment
            and (value is None or r.segment.value == value)
        ]
        if not rows:
            raise NotFoundError(
                f"experiment {key!r} has no results for segment {segment!r}"
                + (f" = {value!r}" if value is not None else ""),
                details={"segment": segment, "value": value},
            )
    axis, sections = ev.results_sections(snapshot, rows)
    pill = ev.settings_pill(snapshot)
    context.update(
        settings=pill,
        axis={"low": axis.low, "high": axis.high, "ticks": axis.ticks, "zero": axis.at(0.0)},
        sections=sections,
    )
    context.update(
        snapshot={
            "id": snapshot.snapshot_id,
            "created_at": snapshot.created_at.isoformat(),
            "as_of": snapshot.as_of.isoformat(),
            "cached": snapshot.cached,
            "engine": snapshot.engine.value,
            "days": len(snapshot.days),
            "units": [u.to_json() for u in snapshot.units],
            "watermark": snapshot.watermark.to_json(),
        },
        # critical health findings: the results table says they cannot be trusted, so a
        # coloured "better" row is not read on its own beside a failed SRM check
        untrusted=[
            c.check.value.replace("_", " ")
            for c in snapshot.health
            if c.severity.value == "critical"
        ],
    )
    if results_only:
        return context
    context.update(
        health=ev.health_view(snapshot.health),
        heatmap=ev.heatmap(snapshot, alpha=pill["alpha"], skip=segs.crossed_names(snapshot)),
        crossed=segs.crossed_grids(
            snapshot, alpha=pill["alpha"], metric=cells[0], variant=cells[1]
        ),
        breakdown=None
        if adhoc is None
        else segs.adhoc_breakdown(
            services=services,
            key=key,
            text=adhoc,
            alpha=pill["alpha"],
            metric=cells[0],
            variant=cells[1],
        ),
        segments=list(snapshot.settings.get("segments", [])),
        timeseries=ev.timeseries(snapshot),
        exposures={
            v: [{"day": d.isoformat(), "units": n} for d, n in points]
            for v, points in views.exposures_per_day(snapshot).items()
        },
        power=[_power_json(c) for c in views.power_curves(snapshot)],
        readout=_readout(snapshot, recommendation, spec),
        novelty=[c.to_json() for c in snapshot.checks("novelty")],
        exposure_days=nov.novelty_view(snapshot),
        interaction=interaction_plot(snapshot, spec),
    )
    return context


def _power_json(curve: views.PowerCurve) -> dict[str, Any]:
    return asdict(curve)


def _twin(context: dict[str, Any]) -> dict[str, Any]:
    """The JSON twin: the page's data without the render-only details."""
    out = {k: v for k, v in context.items() if k not in ("refresh_seconds",)}
    for section in out.get("sections", []):
        for row in section["rows"]:
            row.pop("bar", None)
    return out


def _require_viewer(request: Request, services: Services) -> Principal | None:
    principal, _ = viewer(request, services)
    return principal


@router.get("/experiments/{key}")
def experiment_page(
    request: Request,
    services: ServicesDep,
    key: str,
    segment: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT)] = None,
    value: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT)] = None,
    fragment: Annotated[str | None, Query(max_length=20, pattern="^results$")] = None,
    cell_metric: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT)] = None,
    cell_variant: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT)] = None,
    breakdown: Annotated[str | None, Query(max_length=MAX_QUERY_TEXT)] = None,
) -> Response:
    """The experiment page (``?format=json``: its JSON twin; ``?fragment=results``: only the
    results section, for the running page's refresh; ``?cell_metric=&cell_variant=``: the
    crossed-segment grids' metric and treatment; ``?breakdown=a,b``: an exploratory ad-hoc
    breakdown by one or two exposure attributes)."""
    principal = _require_viewer(request, services)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    segment, value = _segment_filter(segment, value)
    only = fragment == "results"
    context = experiment_context(
        services=services,
        key=key,
        principal=principal,
        segment=segment,
        value=value,
        results_only=only,
        cells=(cell_metric or None, cell_variant or None),
        adhoc=breakdown if breakdown and breakdown.strip() else None,
    )
    if only:
        if context["snapshot"] is None:
            raise NotFoundError(f"experiment {key!r} has no results yet", details={"key": key})
        return page(request, services, "experiment_results.html", context)
    twin = _twin({**context}) if request.query_params.get("format") == "json" else None
    return page(request, services, "experiment.html", context, twin=twin)


@dataclass(frozen=True)
class ActionForm:
    """What an action's dialog posts (besides the CSRF token)."""

    reason: str
    new_key: str | None = None
    variant: str | None = None
    ramp: str | None = None
    hold_hours: str | None = None
    days: str | None = None
    decision: str | None = None
    start_at: str | None = None
    end_at: str | None = None
    weight_keys: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()


@router.post("/experiments/{key}/actions/{name}")
def experiment_action(
    request: Request,
    services: ServicesDep,
    key: str,
    name: str,
    csrf_token: Annotated[str | None, Form()] = None,
    reason: Annotated[str | None, Form()] = None,
    new_key: Annotated[str | None, Form()] = None,
    variant: Annotated[str | None, Form()] = None,
    ramp: Annotated[str | None, Form()] = None,
    hold_hours: Annotated[str | None, Form()] = None,
    days: Annotated[str | None, Form()] = None,
    decision: Annotated[str | None, Form()] = None,
    start_at: Annotated[str | None, Form()] = None,
    end_at: Annotated[str | None, Form()] = None,
    weight_key: Annotated[list[str] | None, Form()] = None,
    weight: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Run one action of the page after the CSRF and role checks; back to the page (303).
    A post without the session's CSRF token, or by a role the action is not offered to, is
    refused (403) before anything is read or written."""
    principal, session = viewer(request, services)
    check_csrf(session if session is not None else read_session(request, services), csrf_token)
    action = BY_NAME.get(name)
    if action is None:
        raise NotFoundError(f"no action {name!r}", details={"action": name})
    if principal is None or not _may(principal, action):
        raise PermissionDeniedError(f"your role may not {action.label.lower()} experiments")
    form = ActionForm(
        reason=form_text(reason, "reason", required=action.reason_required),
        new_key=new_key,
        variant=variant,
        ramp=ramp,
        hold_hours=hold_hours,
        days=days,
        decision=decision,
        start_at=start_at,
        end_at=end_at,
        weight_keys=tuple(weight_key or ()),
        weights=tuple(weight or ()),
    )
    with services.sessions() as db:
        status = Status(repo.get_experiment(session=db, key=key).status)
    pending = _pending(services, key) is not None
    if action.name not in {a.name for a in available_actions(principal, status, pending=pending)}:
        raise ValidationError(
            f"{action.label} is not available while the experiment is {status.value}"
            + (" with a decision awaiting approval" if pending else ""),
            details=[{"loc": ["action"], "msg": f"not in state {status.value}"}],
        )
    target, outcome = _run(services, principal, key, action, form)
    return RedirectResponse(f"{target}?done={outcome}", status_code=303)


def _pending(services: Services, key: str) -> dict[str, Any] | None:
    """The decision awaiting approval, if one does."""
    decisions = list_decisions(services=services, key=key)
    return next((d for d in decisions if d["status"] == "pending_approval"), None)


def _run(
    services: Services, principal: Principal, key: str, action: Action, form: ActionForm
) -> tuple[str, str]:
    """Carry out ``action``: the page to go back to and the outcome to tell."""
    name = action.name
    page_url = f"/experiments/{key}"
    if name in DECISION_ACTIONS:
        days = number(form.days, "days", integer=True) if name == "extend" else None
        made = record_decision(
            services=services,
            key=key,
            action=name,
            rationale=form.reason,
            actor=principal,
            variant=form.variant or None,
            ramp=ramp(form.ramp, form.hold_hours) if name == "ship" else None,
            days=int(days) if days is not None else None,
        )
        return page_url, name + ("_pending" if made["status"] == "pending_approval" else "")
    if name in PENDING_ACTIONS:
        chosen = number(form.decision, "decision", integer=True)
        if chosen is None:
            raise ValidationError(
                "which decision?", details=[{"loc": ["decision"], "msg": "required"}]
            )
        review = approve_decision if name == "approve_decision" else reject_decision
        review(
            services=services,
            key=key,
            decision_id=int(chosen),
            reviewer=principal,
            comment=form.reason,
        )
        return page_url, name
    if name == "refresh":
        analyze(services=services, key=key, refresh=True)
        return page_url, name
    with services.sessions.begin() as session:
        if name in ("approve", "request_changes"):
            verdict = (
                ReviewDecision.APPROVE if name == "approve" else ReviewDecision.REQUEST_CHANGES
            )
            repo.review(
                session=session, key=key, reviewer=principal, decision=verdict, comment=form.reason
            )
        elif name == "note":
            repo.add_note(session=session, key=key, author=principal, body=form.reason)
        elif name == "clone":
            fresh = form_text(form.new_key, "new_key", required=True, limit=MAX_QUERY_TEXT)
            repo.clone_experiment(session=session, key=key, new_key=fresh, actor=principal)
            return f"/experiments/{fresh}", name
        elif name == "schedule":
            # the schedule is not approval-bound: setting it keeps the approval, which the
            # move to scheduled then requires (domain.lifecycle.check_transition)
            patch = schedule_patch(form.start_at, form.end_at, now=repo.now())
            repo.update_experiment(
                session=session, key=key, patch=patch, actor=principal, reason=form.reason
            )
            repo.transition(
                session=session, key=key, to=S.SCHEDULED, actor=principal, reason=form.reason
            )
        elif name == "traffic":
            spec = repo.spec_from_row(repo.get_experiment(session=session, key=key))
            patch = weights_patch(spec, form.weight_keys, form.weights)
            repo.update_experiment(
                session=session, key=key, patch=patch, actor=principal, reason=form.reason
            )
        else:
            to = TRANSITIONS[name]
            repo.transition(session=session, key=key, to=to, actor=principal, reason=form.reason)
    return page_url, name


TRANSITIONS = {
    "request_review": S.REVIEW,
    "start": S.RUNNING,
    "stop": S.STOPPED,
    "readout": S.READOUT,
}


@router.get("/experiments/{key}/variants/{variant}")
def variant_page(
    request: Request,
    services: ServicesDep,
    key: str,
    variant: str,
    bins: Annotated[int, Query(ge=1, le=views.MAX_BINS)] = 30,
) -> Response:
    """One variant: per-metric histograms of per-unit values (binned in the warehouse),
    units over time, assignment balance and the health findings about it."""
    principal = _require_viewer(request, services)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    with services.sessions() as session:
        row = repo.get_experiment(session=session, key=key)
        experiment = repo.experiment_to_dict(row)
        spec = repo.spec_from_row(row)
        status = Status(row.status)
    keys = [v.key for v in spec.variants]
    if variant not in keys:
        raise NotFoundError(
            f"experiment {key!r} has no variant {variant!r}",
            details={"key": key, "variant": variant, "variants": keys},
        )
    snapshot = _snapshot(services, key, status)
    context: dict[str, Any] = {
        "experiment": experiment,
        "variant": variant,
        "control": keys[0],
        "variants": keys,
        "snapshot": None,
    }
    if snapshot is not None:
        total = sum(u.n for u in snapshot.units) or 0
        weights = sum(u.weight for u in snapshot.units) or 1.0
        balance = [
            {
                "variant": u.variant,
                "n": u.n,
                "excluded": u.excluded,
                "share": (u.n / total) if total else None,
                "expected": u.weight / weights,
            }
            for u in snapshot.units
        ]
        findings = [
            c.to_json()
            for c in snapshot.health
            if c.severity.value != "info" and (c.variant in (None, variant))
        ]
        exposures = views.exposures_per_day(snapshot)
        context.update(
            snapshot={"id": snapshot.snapshot_id, "created_at": snapshot.created_at.isoformat()},
            balance=balance,
            findings=findings,
            exposures={
                v: [{"day": d.isoformat(), "units": n} for d, n in exposures.get(v, [])]
                for v in (keys[0], variant)
            },
            histograms=[
                h.to_json() for h in views.variant_histograms(services=services, key=key, bins=bins)
            ],
        )
    return page(request, services, "experiment_variant.html", context, twin=context)

"""The intake wizard (``/experiments/new``): six steps from a hypothesis to a draft in review.

The draft is the experiment itself, stored with status ``draft`` from the first step on and
updated at every step through the store functions the API uses (``create_experiment``,
``update_experiment``, ``transition``: each audited), so a reload — or a visit a week later —
resumes it. Every step is a plain form that works without JavaScript (``intake.js`` only
adds live sums, a live sample-size preview and the power chart); every POST carries the
session's CSRF token; validation happens here on the server, with each error shown next to
its field. Sample sizes come from ``analysis.sizing`` (``stats.power``) and baselines from
``analysis.baseline``; this module computes no statistics.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from splitlab.analysis.sizing import Sizing, parse_inputs
from splitlab.api.deps import ServicesDep
from splitlab.api.schemas import TransitionIn
from splitlab.domain import (
    ExperimentPatch,
    ExperimentSpec,
    MetricDefinition,
    Principal,
    Status,
)
from splitlab.domain.experiments import plain_float
from splitlab.errors import (
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    SplitlabError,
    ValidationError,
    from_pydantic,
)
from splitlab.services import Services
from splitlab.store import experiments as repo
from splitlab.store import metrics as metric_repo
from splitlab.web import intake_forms as forms
from splitlab.web import intake_steps as steps
from splitlab.web.common import check_csrf, page, viewer
from splitlab.web.intake_forms import STEPS, FormErrors
from splitlab.web.intake_steps import SIZING_FIELDS

router = APIRouter(include_in_schema=False)
STEP_NUMBERS = {str(s.number) for s in STEPS}


# ---------------------------------------------------------------- helpers


def _editor_for_page(request: Request, services: Services) -> Principal | None:
    principal, _ = viewer(request, services)
    if principal is not None and not principal.can_edit():
        raise PermissionDeniedError(
            f"creating experiments needs the editor role; you are a {principal.role.value}"
        )
    return principal


def _author(request: Request, services: Services, form: FormData) -> Principal:
    """The author of a POST after the CSRF check (who must be an editor)."""
    principal, session = viewer(request, services)
    token = form.get("csrf_token")
    check_csrf(session, token if isinstance(token, str) else None)
    if principal is None:
        raise AuthenticationError("log in to create experiments")
    if not principal.can_edit():
        raise PermissionDeniedError(
            f"creating experiments needs the editor role; you are a {principal.role.value}"
        )
    return principal


def _draft(services: Services, key: str) -> dict[str, Any]:
    with services.sessions() as session:
        row = repo.get_experiment(session=session, key=key)
        data = repo.experiment_to_dict(row)
    if data["status"] != Status.DRAFT.value:
        raise ConflictError(
            f"experiment {key!r} is {data['status']}, no longer a draft: edit it from its page "
            f"(/experiments/{key})",
            details={"key": key, "status": data["status"]},
        )
    return data


def _first_open_step(draft: dict[str, Any]) -> int:
    """Where a resumed draft continues: the first step whose part is still missing."""
    if not draft.get("hypothesis"):
        return 1
    if len(draft.get("variants", [])) < 2:
        return 2
    if not draft["metrics"].get("primary"):
        return 3
    if draft["plan"].get("mde") is None:
        return 4
    if draft["plan"].get("max_days") is None:
        return 5
    return 6


def _step_url(key: str, step: int, extra: dict[str, Any] | None = None) -> str:
    query = {"draft": key, "step": step} | {k: v for k, v in (extra or {}).items() if v != ""}
    return "/experiments/new?" + urlencode(query)


def _patch(
    services: Services, key: str, fields: dict[str, Any], actor: Principal, reason: str
) -> None:
    """Save ``fields`` into the draft (``update_experiment``: validated, audited)."""
    try:
        patch = ExperimentPatch.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from exc
    with services.sessions.begin() as session:
        repo.update_experiment(session=session, key=key, patch=patch, actor=actor, reason=reason)


def _render(
    request: Request,
    services: Services,
    step: int,
    draft: dict[str, Any] | None,
    context: dict[str, Any],
    *,
    errors: FormErrors | None = None,
    status: int = 200,
) -> Response:
    errors = errors or FormErrors()
    twin = {
        "step": step,
        "steps": [{"number": s.number, "slug": s.slug, "title": s.title} for s in STEPS],
        "experiment": draft,
        "errors": errors.to_json(),
    } | {k: v for k, v in context.get("twin", {}).items()}
    return page(
        request,
        services,
        "intake.html",
        {
            "steps": STEPS,
            "step": STEPS[step - 1],
            "draft": draft,
            "errors": errors,
            "next_open": _first_open_step(draft) if draft else 1,
        }
        | context,
        twin=twin,
        status=status,
    )


# ---------------------------------------------------------------- pages


@router.get("/experiments/new")
def wizard(request: Request, services: ServicesDep) -> Response:
    """Step ``step`` of draft ``draft`` (by default the first step still open), or step 1 of
    a new experiment with the viewer's drafts to resume."""
    principal = _editor_for_page(request, services)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    key = request.query_params.get("draft")
    if not key:
        with services.sessions() as session:
            rows = repo.list_experiments(session=session, status=Status.DRAFT.value)
            drafts = [
                {
                    "key": r.key,
                    "name": r.name,
                    "updated_at": repo.experiment_to_dict(r)["updated_at"],
                }
                for r in rows
                if r.created_by == principal.username
            ][:10]
        context = steps.about_context(None, None) | {"drafts": drafts, "twin": {"drafts": drafts}}
        return _render(request, services, 1, None, context)
    draft = _draft(services, key)
    raw_step = request.query_params.get("step", "")
    step = int(raw_step) if raw_step in STEP_NUMBERS else 0
    if step == 0:
        return RedirectResponse(_step_url(key, _first_open_step(draft)), status_code=303)
    return _render(request, services, step, draft, steps.context(request, services, step, draft))


@router.post("/experiments/new")
async def submit(request: Request, services: ServicesDep) -> Response:
    """Save the posted step into the draft (creating it at step 1) and go on, or show the
    step again with each error next to its field (422)."""
    form = await request.form()
    return await run_in_threadpool(_submit, request, services, form)


def _submit(request: Request, services: Services, form: FormData) -> Response:
    """The POST's work, off the event loop: it reads and writes the app store."""
    actor = _author(request, services, form)
    key = forms.text(form, "draft")
    raw_step = forms.text(form, "step")
    step = int(raw_step) if raw_step in STEP_NUMBERS else 1
    if not key:
        return _save_about(request, services, actor, form, None)
    draft = _draft(services, key)
    handlers = {
        1: _save_about,
        2: _save_variants,
        3: _save_metrics,
        4: _save_sizing,
        5: _save_duration,
        6: _finish,
    }
    return handlers[step](request, services, actor, form, draft)


def _save_about(
    request: Request,
    services: Services,
    actor: Principal,
    form: FormData,
    draft: dict[str, Any] | None,
) -> Response:
    values = forms.about_fields(form)
    values["type"] = values["type"] or "feature"
    errors = FormErrors()
    if not values["hypothesis"]:
        errors.add("hypothesis", "state what you expect to happen and why")
    fields = {k: v for k, v in values.items() if k != "key"}
    if draft is None:
        if not values["key"]:
            errors.add("key", "a key is needed: lower-case letters, digits, - and _")
        try:
            spec = ExperimentSpec.model_validate(values)
        except pydantic.ValidationError as exc:
            forms.absorb(errors, from_pydantic(exc), forms.ABOUT_FIELDS)
        if not errors:
            try:
                with services.sessions.begin() as session:
                    repo.create_experiment(session=session, spec=spec, actor=actor)
            except ConflictError as exc:
                errors.add("key", exc.message)
        if errors:
            context = steps.about_context(None, values) | {"drafts": []}
            return _render(request, services, 1, None, context, errors=errors, status=422)
        return RedirectResponse(_step_url(values["key"], 2), status_code=303)
    key = draft["key"]
    values["key"] = key
    if not errors:
        try:
            _patch(services, key, fields, actor, "intake wizard: hypothesis")
        except ValidationError as exc:
            forms.absorb(errors, exc, forms.ABOUT_FIELDS)
    if errors:
        context = steps.about_context(draft, values)
        return _render(request, services, 1, draft, context, errors=errors, status=422)
    return RedirectResponse(_step_url(key, 2), status_code=303)


def _save_variants(
    request: Request,
    services: Services,
    actor: Principal,
    form: FormData,
    draft: dict[str, Any],
) -> Response:
    rows, control = forms.variant_rows(form)
    action = forms.text(form, "action")
    if action in ("add_variant", "split_evenly"):
        if action == "add_variant" and len(rows) < forms.MAX_VARIANTS:
            rows.append(forms.VariantRowForm())
        if action == "split_evenly":
            filled = [r for r in rows if not r.blank] or rows
            share = math.floor(1e6 / len(filled)) / 1e4  # 4 decimals; the last row takes the rest
            for row in filled:
                row.weight = f"{share:g}"
            filled[-1].weight = f"{round(100 - share * (len(filled) - 1), 4):g}"
        context = steps.variants_context(draft, rows, control)
        return _render(request, services, 2, draft, context)
    errors = FormErrors()
    variants = forms.parse_variants(rows, control, errors)
    if not errors:
        try:
            _patch(services, draft["key"], {"variants": variants}, actor, "intake wizard: variants")
        except ValidationError as exc:
            names = [f"variants.{i}.{f}" for i in range(len(rows)) for f in ("key", "name")]
            forms.absorb(errors, exc, names, rename=forms.variant_rename(rows))
    if errors:
        context = steps.variants_context(draft, rows, control)
        return _render(request, services, 2, draft, context, errors=errors, status=422)
    return RedirectResponse(_step_url(draft["key"], 3), status_code=303)


def _save_metrics(
    request: Request,
    services: Services,
    actor: Principal,
    form: FormData,
    draft: dict[str, Any],
) -> Response:
    errors = FormErrors()
    new = forms.new_metric(form)
    new_role = forms.text(form, "new.role")
    typed_new = {name: forms.text(form, f"new.{name}") for name in forms.NEW_METRIC_FIELDS}
    typed_new["role"] = new_role
    created_key = None
    if new is not None:
        try:
            definition = MetricDefinition.model_validate(new)
        except pydantic.ValidationError as exc:
            forms.absorb(
                errors,
                from_pydantic(exc),
                [f"new.{n}" for n in forms.NEW_METRIC_FIELDS],
                prefix="new.",
            )
        else:
            with services.sessions.begin() as session:
                if metric_repo.missing_metrics(session=session, keys=[definition.key]):
                    metric_repo.upsert_metric(session=session, definition=definition, actor=actor)
                    created_key = definition.key
                else:
                    errors.add("new.key", f"a metric {definition.key!r} exists: pick it above")
    with services.sessions() as session:
        known = {r.key for r in metric_repo.list_metrics(session=session)}
    chosen = forms.metric_choice(form, known, errors)
    if created_key and created_key not in forms.chosen_keys(chosen):
        if new_role == "primary":
            if chosen["primary"]:
                chosen["secondary"].insert(0, chosen["primary"])
            chosen["primary"] = created_key
        elif new_role == "guardrail":
            chosen["guardrails"].append({"key": created_key, "margin": None})
        elif new_role == "secondary":
            chosen["secondary"].append(created_key)
    adding = forms.text(form, "action") == "add_metric"
    if not adding and not chosen["primary"]:
        errors.add("metrics.primary", "choose the primary metric: the one the decision rests on")
    if not errors:
        try:
            _patch(services, draft["key"], {"metrics": chosen}, actor, "intake wizard: metrics")
        except ValidationError as exc:
            forms.absorb(
                errors, exc, ["metrics.primary", "metrics.secondary", "metrics.guardrails"]
            )
    if errors or adding:
        new_values = {} if created_key else typed_new
        context = steps.metrics_context(services, draft, chosen, new_values)
        status = 422 if errors else 200
        return _render(request, services, 3, draft, context, errors=errors, status=status)
    return RedirectResponse(_step_url(draft["key"], 4), status_code=303)


def _save_sizing(
    request: Request,
    services: Services,
    actor: Principal,
    form: FormData,
    draft: dict[str, Any],
) -> Response:
    names = ("baseline", "sd", "mde", "alpha", "power", "daily_units", "sidedness")
    values = {name: forms.text(form, name) for name in names}
    metric = steps.primary_definition(services, draft)
    shape = forms.sizing_shape(metric.kind.value if metric else None)
    errors = FormErrors()
    data: dict[str, Any] = {k: v for k, v in values.items() if v and k != "mde"}
    data["kind"] = shape
    if shape == "proportion":
        data.pop("sd", None)
    try:
        data["mde"] = plain_float(values["mde"]) / 100 if values["mde"] else None
    except ValueError:
        errors.add("mde", "a relative change in percent, e.g. 5")
    data["variants"] = max(len(draft["variants"]), 2)
    data["coverage"] = draft.get("coverage") or 1.0
    if not errors:
        try:
            inputs = parse_inputs(data)
        except ValidationError as exc:
            forms.absorb(errors, exc, names)
        else:
            plan = draft["plan"] | {
                "alpha": inputs.alpha,
                "power": inputs.power,
                "mde": inputs.mde,
            }
            try:
                _patch(services, draft["key"], {"plan": plan}, actor, "intake wizard: sample size")
            except ValidationError as exc:
                forms.absorb(
                    errors,
                    exc,
                    names,
                    prefix="",
                    rename={"plan.alpha": "alpha", "plan.power": "power", "plan.mde": "mde"},
                )
    if errors:
        context = steps.sizing_context(services, draft, values)
        return _render(request, services, 4, draft, context, errors=errors, status=422)
    extra = {k: values[k] for k in SIZING_FIELDS}
    if shape == "proportion":
        extra["sd"] = ""
    return RedirectResponse(_step_url(draft["key"], 5, extra), status_code=303)


def _save_duration(
    request: Request,
    services: Services,
    actor: Principal,
    form: FormData,
    draft: dict[str, Any],
) -> Response:
    source = {k: forms.text(form, k) for k in SIZING_FIELDS}
    typed = forms.text(form, "max_days")
    errors = FormErrors()
    max_days: int | None = None
    if typed:
        try:
            max_days = int(typed)
        except ValueError:
            errors.add("max_days", "a whole number of days, e.g. 14")
    else:
        errors.add("max_days", "how many days the experiment may run at most")
    if not errors:
        try:
            plan = draft["plan"] | {"max_days": max_days}
            _patch(services, draft["key"], {"plan": plan}, actor, "intake wizard: duration")
        except ValidationError as exc:
            forms.absorb(errors, exc, ["max_days"], rename={"plan.max_days": "max_days"})
    if errors:
        context = steps.duration_context(services, draft, source, typed)
        return _render(request, services, 5, draft, context, errors=errors, status=422)
    context = steps.duration_context(services, draft, source, typed)
    sizing: Sizing | None = context["sizing"]
    if sizing is not None and forms.text(form, "note") == "on":
        with services.sessions.begin() as session:
            repo.add_note(
                session=session, key=draft["key"], author=actor, body=_sizing_note(sizing, max_days)
            )
    return RedirectResponse(_step_url(draft["key"], 6), status_code=303)


def _sizing_note(sizing: Sizing, max_days: int | None) -> str:
    inputs = sizing.inputs
    spread = f", sd {inputs.sd:g}" if inputs.sd is not None else ""
    traffic = (
        f"; at {inputs.daily_units:g} units/day that takes {sizing.days} days"
        if sizing.days is not None and inputs.daily_units is not None
        else ""
    )
    return (
        f"Sample size (intake wizard): {inputs.kind} metric, baseline {inputs.baseline:g}{spread}; "
        f"MDE {inputs.mde:.2%} relative, alpha {inputs.alpha:g}, power {inputs.power:g}, "
        f"{inputs.sidedness}: {sizing.n_per_variant} units per variant, "
        f"{sizing.n_total} in all{traffic}. Planned maximum: {max_days} days."
    )


def _finish(
    request: Request,
    services: Services,
    actor: Principal,
    form: FormData,
    draft: dict[str, Any],
) -> Response:
    key = draft["key"]
    if forms.text(form, "request_review") != "on":
        return RedirectResponse(f"/experiments/{key}", status_code=303)
    errors = FormErrors()
    reviewers = [r.strip() for r in forms.text(form, "reviewers").split(",") if r.strip()]
    try:
        TransitionIn.model_validate({"to": "review", "reviewers": reviewers})
    except pydantic.ValidationError:
        errors.add("reviewers", "at most 20 user names of at most 100 characters, comma-separated")
    if not errors:
        try:
            with services.sessions.begin() as session:
                repo.transition(
                    session=session,
                    key=key,
                    to=Status.REVIEW,
                    actor=actor,
                    reason=forms.text(form, "reason")[:2000] or "submitted from the intake wizard",
                    reviewers=reviewers,
                )
        except SplitlabError as exc:
            errors.general.append(exc.message)
    if errors:
        context = steps.review_context(services, draft) | {"reviewers": ", ".join(reviewers)}
        return _render(request, services, 6, draft, context, errors=errors, status=422)
    return RedirectResponse(f"/experiments/{key}", status_code=303)

"""What each step of the intake wizard shows: the draft's values (or what was typed), the
metric definitions to pick from, the recent baseline of the primary metric, the sample size
and duration (``analysis.sizing``) and what still stops the draft from going to review."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from splitlab.analysis.baseline import MetricBaseline, metric_baseline
from splitlab.analysis.sizing import Sizing, parse_inputs, size
from splitlab.domain import ExperimentSpec, MetricDefinition, draft_problems
from splitlab.errors import NotFoundError, ValidationError
from splitlab.services import Services
from splitlab.store import metrics as metric_repo
from splitlab.store.metrics import missing_metrics
from splitlab.web import intake_forms as forms

BASELINE_DAYS = 28
"""Days of recent data the primary metric's baseline is read from."""
SIZING_FIELDS = ("baseline", "sd", "daily_units", "sidedness")
"""Sample-size inputs that are not part of the experiment: carried in the URL of step 5."""


def about_context(draft: dict[str, Any] | None, values: dict[str, Any] | None) -> dict[str, Any]:
    """Step 1: the draft's identity and hypothesis (or what was typed), and the types."""
    if values is None:
        values = {name: (draft or {}).get(name, "") for name in forms.ABOUT_FIELDS}
        values["type"] = values["type"] or "feature"
    return {"values": values, "types": forms.TYPES}


def variants_context(
    draft: dict[str, Any], rows: list[forms.VariantRowForm] | None, control: str | None
) -> dict[str, Any]:
    """Step 2: the variant rows (the draft's, what was typed, or control/treatment 50/50)."""
    if rows is None:
        if draft["variants"]:
            rows, control = forms.rows_from_variants(draft["variants"])
        else:
            rows = [
                forms.VariantRowForm("control", "Control", "50"),
                forms.VariantRowForm("treatment", "Treatment", "50"),
            ]
            control = "0"
    return {"rows": rows, "control": control or "", "twin": {"rows": [r.__dict__ for r in rows]}}


def metrics_context(
    services: Services, draft: dict[str, Any], chosen: dict[str, Any] | None, new: dict[str, Any]
) -> dict[str, Any]:
    """Step 3: the metric definitions to pick from, the current choice and the new-metric form."""
    chosen = chosen or draft["metrics"]
    margins = {g["key"]: g.get("margin") for g in chosen.get("guardrails", [])}
    return {
        "metrics": metrics(services),
        "chosen": {
            "primary": chosen.get("primary"),
            "secondary": set(chosen.get("secondary", [])),
            "guardrails": set(margins),
            "margins": margins,
        },
        "new": new,
        "kinds": forms.KINDS,
        "directions": forms.DIRECTIONS,
    }


def sizing_context(
    services: Services, draft: dict[str, Any], values: dict[str, Any] | None
) -> dict[str, Any]:
    """Step 4: the sample-size inputs, prefilled from the primary metric's recent data."""
    metric = primary_definition(services, draft)
    shape = forms.sizing_shape(metric.kind.value if metric else None)
    baseline = recent_baseline(services, metric)
    if values is None:
        plan = draft["plan"]
        values = {
            "baseline": "",
            "sd": "",
            "daily_units": "",
            "sidedness": "two-sided",
            "mde": f"{plan['mde'] * 100:g}" if plan.get("mde") else "5",
            "alpha": f"{plan['alpha']:g}",
            "power": f"{plan['power']:g}",
        }
        if baseline is not None:
            values["baseline"] = f"{baseline.mean:.6g}" if baseline.mean is not None else ""
            values["sd"] = f"{baseline.sd:.6g}" if baseline.sd is not None else ""
            values["daily_units"] = _traffic(baseline.daily_units)
    return {
        "values": values,
        "shape": shape,
        "metric": metric.model_dump(mode="json") if metric else None,
        "baseline": baseline,
        "baseline_days": BASELINE_DAYS,
        "twin": {
            "shape": shape,
            "baseline": None
            if baseline is None
            else {
                "units": baseline.units,
                "mean": baseline.mean,
                "sd": baseline.sd,
                "daily_units": baseline.daily_units,
                "since": baseline.since.isoformat(),
                "until": baseline.until.isoformat(),
            },
        },
    }


def sizing_inputs(draft: dict[str, Any], shape: str, source: dict[str, Any]) -> dict[str, Any]:
    """The calculator's inputs for this draft: the plan's α, power and MDE, the draft's
    variants and coverage, and the baseline, SD, traffic and sidedness given in ``source``."""
    plan = draft["plan"]
    data: dict[str, Any] = {
        "kind": shape,
        "baseline": source.get("baseline"),
        "mde": plan.get("mde"),
        "alpha": plan["alpha"],
        "power": plan["power"],
        "variants": max(len(draft["variants"]), 2),
        "coverage": draft.get("coverage") or 1.0,
        "sidedness": source.get("sidedness") or "two-sided",
    }
    if shape != "proportion" and source.get("sd"):
        data["sd"] = source["sd"]
    if source.get("daily_units"):
        data["daily_units"] = source["daily_units"]
    return data


def duration_context(
    services: Services, draft: dict[str, Any], source: dict[str, Any], max_days: str | None
) -> dict[str, Any]:
    """Step 5: the sample size, duration, power curve and weeks × MDE table, and the plan's days."""
    metric = primary_definition(services, draft)
    shape = forms.sizing_shape(metric.kind.value if metric else None)
    sizing: Sizing | None = None
    problem = ""
    if not source.get("baseline"):
        problem = "Enter the baseline of the primary metric in step 4 to see the sample size."
    else:
        try:
            sizing = size(parse_inputs(sizing_inputs(draft, shape, source)))
        except ValidationError as exc:
            problem = f"The sample-size inputs need fixing in step 4: {exc.message}"
    suggested = ""
    if sizing is not None and sizing.days is not None:
        suggested = str(min(max(7, math.ceil(sizing.days / 7) * 7), 3650))
    if max_days is None:
        planned = draft["plan"].get("max_days")
        max_days = str(planned) if planned else suggested
    return {
        "sizing": sizing,
        "sizing_json": sizing.model_dump(mode="json") if sizing else None,
        "problem": problem,
        "max_days": max_days,
        "suggested": suggested,
        "source": {k: source.get(k, "") for k in SIZING_FIELDS},
        "twin": {"sizing": sizing.model_dump(mode="json") if sizing else None},
    }


def review_context(services: Services, draft: dict[str, Any]) -> dict[str, Any]:
    """Step 6: what still stops the draft from going to review, each with its step."""
    spec = ExperimentSpec.model_validate(
        {k: v for k, v in draft.items() if k in ExperimentSpec.model_fields}
    )
    problems = draft_problems(spec)
    with services.sessions() as session:
        unknown = missing_metrics(session=session, keys=spec.metrics.all_keys())
    if unknown:
        problems.append(f"metrics: unknown metric definitions: {', '.join(sorted(unknown))}")
    fixes = {"hypothesis": 1, "variants": 2, "metrics.primary": 3, "metrics": 3}
    listed = [{"text": p, "step": fixes.get(p.split(":")[0], 1)} for p in problems]
    return {"problems": listed, "twin": {"problems": problems}}


def metrics(services: Services) -> list[dict[str, Any]]:
    """Every metric definition, as the API lists them."""
    with services.sessions() as session:
        return [metric_repo.metric_to_dict(r) for r in metric_repo.list_metrics(session=session)]


def primary_definition(services: Services, draft: dict[str, Any]) -> MetricDefinition | None:
    """The current definition of the draft's primary metric (None without one)."""
    primary = draft["metrics"].get("primary")
    if not primary:
        return None
    with services.sessions() as session:
        try:
            return metric_repo.metric_from_row(metric_repo.get_metric(session=session, key=primary))
        except NotFoundError:
            return None


def _traffic(daily: float) -> str:
    """Units per day as a form shows them: whole units from 100 up, else three digits."""
    return f"{daily:.0f}" if daily >= 100 else f"{daily:.3g}"


def recent_baseline(services: Services, metric: MetricDefinition | None) -> MetricBaseline | None:
    """The primary metric's recent baseline, None without data (or for a quantile metric)."""
    if metric is None:
        return None
    try:
        found = metric_baseline(services=services, metric=metric.key, days=BASELINE_DAYS)
    except ValidationError:
        return None
    return found if found is not None and found.units >= 2 else None


def context(
    request: Request, services: Services, step: int, draft: dict[str, Any]
) -> dict[str, Any]:
    """What step ``step`` of ``draft`` shows on a GET (steps 4 and 5 read the sample-size
    inputs that are not part of the experiment from the URL)."""
    query = request.query_params
    if step == 1:
        return about_context(draft, None)
    if step == 2:
        return variants_context(draft, None, None)
    if step == 3:
        return metrics_context(services, draft, None, {})
    if step == 4:
        context = sizing_context(services, draft, None)
        for name in SIZING_FIELDS:  # coming back from step 5 keeps what was typed
            if query.get(name):
                context["values"][name] = query[name]
        return context
    if step == 5:
        source = {k: query.get(k, "") for k in SIZING_FIELDS}
        if not source["baseline"]:
            baseline = recent_baseline(services, primary_definition(services, draft))
            if baseline is not None and baseline.mean is not None:
                source |= {
                    "baseline": f"{baseline.mean:.6g}",
                    "sd": f"{baseline.sd:.6g}" if baseline.sd is not None else "",
                    "daily_units": _traffic(baseline.daily_units),
                }
        return duration_context(services, draft, source, None)
    return review_context(services, draft)

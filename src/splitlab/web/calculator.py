"""``/calculator``: sample size, MDE and duration for proportions, means and ratio metrics.

The form is a GET form, so every calculation is a URL to share; ``intake.js`` recomputes as
the inputs change through ``GET /api/power`` (``api.power``) and keeps the URL in step. The
JSON twin (``?format=json``) is the same answer as ``/api/power``. The numbers come from
``analysis.sizing`` (``stats.power``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from splitlab.analysis.sizing import Sizing, parse_inputs, size
from splitlab.api.deps import ServicesDep
from splitlab.errors import ValidationError
from splitlab.web.common import page, viewer
from splitlab.web.intake_forms import FormErrors, absorb

router = APIRouter(include_in_schema=False)

DEFAULTS = {
    "kind": "proportion",
    "baseline": "0.1",
    "sd": "",
    "mde": "5",
    "alpha": "0.05",
    "power": "0.8",
    "daily_units": "10000",
    "variants": "2",
    "coverage": "100",
    "sidedness": "two-sided",
}
"""The form's fields (MDE and coverage in percent) and what a first visit starts from."""


def _percent(value: str, name: str, errors: FormErrors) -> float | None:
    if not value:
        return None
    try:
        return float(value) / 100
    except ValueError:
        errors.add(name, "a number in percent, e.g. 5")
        return None


@router.get("/calculator")
def calculator(request: Request, services: ServicesDep) -> Response:
    """The calculator with the answer for the inputs in the query string."""
    principal, _ = viewer(request, services)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    query = request.query_params
    asked = any(name in query for name in DEFAULTS)
    values = {
        name: (query.get(name, "") if asked else default)[:50] for name, default in DEFAULTS.items()
    }
    errors = FormErrors()
    data: dict[str, Any] = {
        k: v for k, v in values.items() if v and k not in ("mde", "coverage", "sd")
    }
    if values["kind"] != "proportion" and values["sd"]:
        data["sd"] = values["sd"]
    data["mde"] = _percent(values["mde"], "mde", errors)
    coverage = _percent(values["coverage"], "coverage", errors)
    if coverage is not None:
        data["coverage"] = coverage
    sizing: Sizing | None = None
    if not errors:
        try:
            sizing = size(parse_inputs(data))
        except ValidationError as exc:
            absorb(errors, exc, DEFAULTS)
    twin: dict[str, Any] = (
        sizing.model_dump(mode="json") if sizing else {"errors": errors.to_json()}
    )
    return page(
        request,
        services,
        "calculator.html",
        {
            "values": values,
            "errors": errors,
            "sizing": sizing,
            "sizing_json": sizing.model_dump(mode="json") if sizing else None,
        },
        twin=twin,
        status=422 if errors else 200,
    )

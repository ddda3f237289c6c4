"""The model / prompt leaderboard (``/models``) and an experiment's quality, cost and
performance overlay (``/experiments/{key}/ml``).

Numbers come from ``decisions.leaderboard`` and ``decisions.ml`` (which read stored snapshots
and variant payloads); this module only reads the URL, sorts, draws sparklines and renders.
Every filter and sort is in the query string; ``?format=json`` gives the JSON twin and
``?format=csv`` the leaderboard as CSV.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from splitlab.analysis.service import latest
from splitlab.api.deps import ServicesDep
from splitlab.decisions.leaderboard import (
    PARTS,
    Entry,
    Selection,
    configurations,
    leaderboard,
)
from splitlab.decisions.ml import ML_TYPES, overlay, payload_number
from splitlab.domain import ExperimentType, Status
from splitlab.errors import ValidationError
from splitlab.store.experiments import get_experiment, spec_from_row
from splitlab.web.common import csv_text, page, viewer

router = APIRouter(include_in_schema=False)

MAX_TEXT = 200
MAX_VALUES = 50
SORTS = ("quality", "cost", "latency", "experiment", "config")
"""Sort keys of the leaderboard (``-`` in front: descending)."""
SPARK_W, SPARK_H = 96, 24
PER_PAGE = 100
"""Rows per HTML page (the JSON twin and the CSV hold every row)."""


def _problem(name: str, msg: str) -> dict[str, Any]:
    return {"loc": ["query", name], "msg": msg}


def _texts(request: Request, name: str, problems: list[dict[str, Any]]) -> tuple[str, ...]:
    values = [v.strip() for v in request.query_params.getlist(name) if v.strip()]
    if len(values) > MAX_VALUES or any(
        len(v) > MAX_TEXT or any(ord(c) < 32 for c in v) for v in values
    ):
        problems.append(_problem(name, f"at most {MAX_VALUES} printable values"))
        return ()
    return tuple(dict.fromkeys(values))


def read_selection(request: Request) -> tuple[Selection, str]:
    """The leaderboard's filters and sort from the URL (422 naming each bad parameter)."""
    problems: list[dict[str, Any]] = []
    types = _texts(request, "type", problems)
    known = {t.value for t in ExperimentType}
    if any(t not in known and t != "all" for t in types):
        problems.append(_problem("type", f"one of all, {', '.join(sorted(known))}"))
    statuses = _texts(request, "status", problems)
    if any(s not in {x.value for x in Status} for s in statuses):
        problems.append(_problem("status", "a lifecycle status"))
    sort = request.query_params.get("sort", "-quality")
    if sort.lstrip("-") not in SORTS or sort.count("-") > 1:
        problems.append(_problem("sort", f"one of {', '.join(SORTS)}, optionally with '-'"))
        sort = "-quality"
    search = _texts(request, "q", problems)
    if problems:
        raise ValidationError("the leaderboard's filters are not valid", details=problems)
    selection = Selection(
        types=() if "all" in types else (types or ML_TYPES),
        teams=_texts(request, "team", problems),
        statuses=statuses,
        experiments=_texts(request, "experiment", problems),
        search=search[0] if search else "",
    )
    if problems:
        raise ValidationError("the leaderboard's filters are not valid", details=problems)
    return selection, sort


def _sort_value(entry: Entry, name: str) -> tuple[int, Any]:
    """(missing last, value) with *better* sorting first for the metric parts."""
    if name == "experiment":
        return 0, (entry.experiment, not entry.is_control, entry.variant)
    if name == "config":
        return 0, entry.config.lower()
    measure = entry.measures.get(name)
    if measure is None or measure.value is None or not math.isfinite(measure.value):
        return 1, 0.0
    return 0, (-measure.value if measure.higher_is_better else measure.value)


def sort_entries(entries: list[Entry], sort: str) -> list[Entry]:
    """``quality``/``cost``/``latency``: best first (``-`` reverses: worst first);
    ``experiment``/``config``: A→Z (``-``: Z→A). Missing values always last."""
    name = sort.lstrip("-")
    descending = sort.startswith("-")
    present = [e for e in entries if _sort_value(e, name)[0] == 0]
    missing = [e for e in entries if _sort_value(e, name)[0] == 1]
    reverse = descending if name in ("experiment", "config") else not descending
    present.sort(key=lambda e: _sort_value(e, name)[1], reverse=reverse)
    return present + missing


def sparkline(values: tuple[float, ...] | list[float]) -> str:
    """SVG polyline points for a small sparkline ('' with fewer than two points)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = SPARK_W / (len(values) - 1)
    return " ".join(
        f"{i * step:.1f},{SPARK_H - 2 - (v - low) / span * (SPARK_H - 4):.1f}"
        for i, v in enumerate(values)
    )


def _row(entry: Entry) -> dict[str, Any]:
    data = entry.to_json()
    for part in PARTS:
        if data[part] is not None:
            data[part]["points"] = sparkline(data[part]["spark"])
    return data


CSV_COLUMNS = (
    "experiment",
    "variant",
    "config",
    "frontier",
    "dominated_by",
    *(
        f"{p}_{f}"
        for p in PARTS
        for f in ("metric", "value", "delta", "ci_low", "ci_high", "p_value", "significant")
    ),
)


def to_csv(entries: list[Entry]) -> str:
    """The leaderboard as CSV, in the page's order (formula-like text quoted)."""

    def flat(entry: Entry) -> dict[str, Any]:
        data = entry.to_json()
        row = {k: data[k] for k in ("experiment", "variant", "config", "frontier", "dominated_by")}
        for part in PARTS:
            measure = data[part] or {}
            for f in ("metric", "value", "delta", "ci_low", "ci_high", "p_value", "significant"):
                row[f"{part}_{f}"] = measure.get(f)
        return row

    return csv_text(CSV_COLUMNS, map(flat, entries))


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise ValidationError(
            "page must be a whole number ≥ 1", details=[_problem("page", "an integer ≥ 1")]
        )
    return int(raw)


def _page_url(request: Request, number: int) -> str:
    return str(request.url.include_query_params(page=number))


def _format(request: Request) -> str:
    fmt = request.query_params.get("format", "html")
    if fmt not in ("html", "json", "csv"):
        raise ValidationError(
            "format must be html, json or csv", details=[_problem("format", "html, json or csv")]
        )
    return fmt


@router.get("/models")
def models_page(request: Request, services: ServicesDep) -> Response:
    """The leaderboard; ``?format=json`` its twin, ``?format=csv`` the table."""
    user, _ = viewer(request, services)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    fmt = _format(request)
    number = _page_number(request)
    selection, sort = read_selection(request)
    entries = sort_entries(leaderboard(services=services, selection=selection), sort)
    if fmt == "csv":
        return Response(
            to_csv(entries),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="models.csv"'},
        )
    twin = {
        "filters": {
            "type": list(selection.types),
            "team": list(selection.teams),
            "status": list(selection.statuses),
            "experiment": list(selection.experiments),
            "q": selection.search,
            "sort": sort,
        },
        "entries": [e.to_json() for e in entries],
        "configurations": configurations(entries),
        "frontier_rule": (
            "Within an experiment, B dominates A when B is at least as good on quality, cost "
            "and latency (estimates) and better on at least one by more than z·√(SE_A²+SE_B²) "
            "at the experiment's α; listed prices are exact."
        ),
    }
    pages = max(1, -(-len(entries) // PER_PAGE))
    number = min(number, pages)
    shown = entries[(number - 1) * PER_PAGE : number * PER_PAGE]
    context = {
        "entries": [_row(e) for e in shown],
        "total": len(entries),
        "pagination": {
            "page": number,
            "pages": pages,
            "first": (number - 1) * PER_PAGE + 1 if shown else 0,
            "last": (number - 1) * PER_PAGE + len(shown),
            "prev": _page_url(request, number - 1) if number > 1 else None,
            "next": _page_url(request, number + 1) if number < pages else None,
        },
        "configurations": twin["configurations"],
        "filters": twin["filters"],
        "types": [t.value for t in ExperimentType],
        "ml_types": list(ML_TYPES),
        "statuses": [s.value for s in Status],
        "sorts": SORTS,
        "spark": {"w": SPARK_W, "h": SPARK_H},
        "frontier_count": sum(e.frontier for e in entries),
    }
    return page(request, services, "models.html", context, twin=twin)


def _number(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value > 1e12:
        raise ValidationError(
            f"{name} must be a number ≥ 0", details=[_problem(name, "a finite number ≥ 0")]
        )
    return value


@router.get("/experiments/{key}/ml")
def overlay_page(request: Request, services: ServicesDep, key: str) -> Response:
    """Quality, cost and performance of every variant of ``key`` against its control;
    ``?quality=`` / ``?cost=`` pick the metrics, ``?value=`` is the value of one unit of
    quality per request (for ROI)."""
    user, _ = viewer(request, services)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    problems: list[dict[str, Any]] = []
    quality = _texts(request, "quality", problems)
    cost = _texts(request, "cost", problems)
    value = _number(request, "value")
    if problems:
        raise ValidationError("the overlay's parameters are not valid", details=problems)
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        spec = spec_from_row(row)
        experiment = {"key": row.key, "name": row.name, "type": row.type, "status": row.status}
    snapshot = latest(services=services, key=key)
    payloads = {v.key: v.payload for v in spec.variants}
    roles, variants = overlay(
        snapshot,
        payloads,
        quality=quality[0] if quality else None,
        cost=cost[0] if cost else None,
        value_per_quality_unit=value,
    )
    twin = {
        "experiment": experiment,
        "snapshot": {"id": snapshot.snapshot_id, "created_at": snapshot.created_at.isoformat()},
        "alpha": snapshot.settings.get("alpha", 0.05),
        "correction": snapshot.settings.get("correction"),
        "roles": {
            "quality": roles.quality,
            "cost": roles.cost,
            "latency": list(roles.latency),
            "throughput": list(roles.throughput),
            "errors": list(roles.errors),
        },
        "value_per_quality_unit": value,
        "variants": [v.to_json() for v in variants],
    }
    metrics = [
        (d["definition"]["key"], d["definition"].get("name") or d["definition"]["key"])
        for d in snapshot.settings.get("metrics", [])
    ]
    has_quantile = any(
        d["definition"].get("kind") == "quantile" for d in snapshot.settings.get("metrics", [])
    )
    priced = all(payload_number(p, "cost_per_request") is not None for p in payloads.values())
    context = twin | {
        "metrics": metrics,
        "has_quantile": has_quantile,
        "priced": priced,
        "ml_type": experiment["type"] in ML_TYPES,
    }
    return page(request, services, "models_overlay.html", context, twin=twin)

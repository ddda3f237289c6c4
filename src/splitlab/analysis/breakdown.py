"""Ad-hoc breakdowns: an experiment's results by exposure attributes chosen after the fact.

``GET /api/experiments/{key}/results?breakdown=country,device`` (and ``splitlab analyze KEY
--breakdown country,device``) analyse the experiment on demand with those attributes as its
segments — one attribute, or two, which add their crossed cells (``country × device``) with
the correction across cells and the heterogeneity test — in one warehouse pass, overall and
per-cell rows only (no daily series). The plan is otherwise the experiment's own.

Such a breakdown was not pre-registered: the snapshot carries ``breakdown`` with
``exploratory: true`` and a note saying so, and it is never stored as the experiment's
snapshot (``latest`` and the decisions never see it). It is cached in the process, keyed
like stored snapshots by the settings hash and the data watermark, so asking again while
the data is unchanged costs the watermark query only.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from splitlab.analysis.cache import ViewCache, view_key
from splitlab.analysis.service import load_plan, run_analysis
from splitlab.analysis.snapshot import Breakdown, Snapshot
from splitlab.domain.limits import property_name_problem
from splitlab.errors import ValidationError

if TYPE_CHECKING:
    from splitlab.services import Services

MAX_DIMENSIONS = 2
CACHE_SIZE = 128
NOTE = (
    "Exploratory: these attributes were not pre-registered as segments. Read cell effects as "
    "hypotheses for a new experiment, not as findings (p-values are corrected across the "
    "cells of each attribute, not across every breakdown one might try)."
)

_cache: ViewCache[Snapshot] = ViewCache(CACHE_SIZE)


def parse_dimensions(text: str) -> tuple[str, ...]:
    """``"country,device"`` → the attribute names (one or two distinct property names)."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    problems = [(name, property_name_problem(name)) for name in names]
    bad = [(name, problem) for name, problem in problems if problem]
    if not names or len(names) > MAX_DIMENSIONS or len(set(names)) != len(names) or bad:
        detail = (
            "; ".join(f"{name[:50]!r} {problem}" for name, problem in bad)
            or f"give one or two different exposure attributes, comma-separated (got {text!r})"
        )
        raise ValidationError(
            f"breakdown: {detail}", details=[{"loc": ["query", "breakdown"], "msg": detail}]
        )
    return names


def breakdown(*, services: Services, key: str, dimensions: tuple[str, ...]) -> Snapshot:
    """The experiment's results broken down by ``dimensions`` (see the module docstring)."""
    plan, _status = load_plan(services=services, key=key)
    crossed = (dimensions,) if len(dimensions) == 2 else ()
    adhoc = dataclasses.replace(
        plan,
        segments=dimensions,
        crossed=tuple((a, b) for a, b in crossed),
        daily=False,
    )
    warehouse = services.warehouse
    watermark = warehouse.watermark()
    cache_key = view_key(warehouse, key, adhoc.settings_hash(), watermark.cache_key())
    found = _cache.get(cache_key)
    if found is not None:
        return found.model_copy(update={"cached": True})
    snapshot = run_analysis(warehouse=warehouse, plan=adhoc, watermark=watermark)
    label = Breakdown(dimensions=dimensions, exploratory=True, note=NOTE)
    snapshot = snapshot.model_copy(update={"breakdown": label, "cached": False})
    _cache.put(cache_key, snapshot)
    return snapshot

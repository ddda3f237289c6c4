"""Triggered populations: the assigned population kept beside a triggered analysis.

With ``plan.trigger`` the analysis pass runs on the triggered units (``warehouse.triggers``),
so a snapshot's results, units, daily series and health checks — the sample-ratio check
included — are the triggered population's. :func:`assigned_population` adds what the
experiment would show without the trigger: a second, overall-only pass (no segments, no
daily series) over every exposed unit from its exposure, and the sample-ratio test on both
populations, as the snapshot's ``population``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import numpy as np

from splitlab import stats
from splitlab.analysis.aggregates import Aggregates, fetch_aggregates
from splitlab.analysis.compute import compute_results
from splitlab.analysis.plan import AnalysisPlan
from splitlab.analysis.snapshot import Population, PopulationUnits


def _srm_p(n: Any, weights: tuple[float, ...]) -> float | None:
    p = float(stats.srm_test(np.asarray(n, float), np.asarray(weights, float)).p_value)
    return p if np.isfinite(p) else None


def assigned_population(
    *,
    con: Any,
    tables: dict[str, Any],
    plan: AnalysisPlan,
    as_of: datetime,
    triggered: Aggregates,
) -> Population:
    """The ``population`` of a triggered snapshot: per-variant assigned and triggered unit
    counts, both sample-ratio tests and the assigned population's overall result rows.
    ``tables`` holds the warehouse tables ``fetch_aggregates`` takes (``exposures``,
    ``events``, ``conflicts``, ``unit_values``)."""
    assert plan.trigger is not None
    overall = dataclasses.replace(plan, trigger=None, segments=(), crossed=(), daily=False)
    assigned = fetch_aggregates(con, plan=overall, as_of=as_of, **tables)
    results, _daily, _families = compute_results(overall, assigned)
    n_assigned, n_triggered = assigned.n[0], triggered.n[0]
    units = tuple(
        PopulationUnits(variant=v, assigned=int(n_assigned[i]), triggered=int(n_triggered[i]))
        for i, v in enumerate(plan.variants)
    )
    return Population(
        trigger=plan.trigger.model_dump(mode="json"),
        units=units,
        srm_p_triggered=_srm_p(n_triggered, plan.weights),
        srm_p_assigned=_srm_p(n_assigned, plan.weights),
        assigned_results=tuple(r for r in results if r.segment is None),
    )

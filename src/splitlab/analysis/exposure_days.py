"""The novelty view's sums: each binary, count and sum metric measured one whole day at a
time since each unit's first exposure, per variant.

:func:`fetch_exposure_days` runs the small warehouse queries (``warehouse.exposure_days``) on
the analysed units; ``analysis.novelty`` compares the arms and serves the view on demand
(``novelty.exposure_day_view``), beside a snapshot, not inside the analysis's pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from splitlab.analysis.plan import AnalysisPlan
from splitlab.warehouse import exposure_days as queries

if TYPE_CHECKING:
    import ibis

FloatArray = npt.NDArray[np.float64]
MAX_DAYS = 28
"""Days since exposure shown at most (fewer when the plan's ``max_days`` is shorter)."""
TIMING_KEY = "exposure_days"
"""The step's key in the snapshot's ``timings_ms``."""


@dataclass(frozen=True)
class ExposureDayAggregates:
    """Sums per day since exposure (k = 0 … days − 1) × variant of the plan's metrics at
    ``metrics`` (plan positions)."""

    metrics: tuple[int, ...]
    units: FloatArray
    """(days, variants): units whose day k is complete."""
    sums: FloatArray
    """(metrics, days, variants): Σy of the metric on day k (0 for units without events)."""
    sums_sq: FloatArray
    """(metrics, days, variants): Σy²."""


def measured_metrics(plan: AnalysisPlan) -> tuple[int, ...]:
    """Plan positions of the metrics the view measures: binary, count and sum event metrics."""
    return tuple(
        i
        for i, m in enumerate(plan.definitions)
        if m.kind in queries.KINDS and m.source == "events"
    )


def horizon(plan: AnalysisPlan) -> int:
    """How many days since exposure to measure: ``MAX_DAYS``, or the plan's ``max_days``."""
    return min(plan.max_days or MAX_DAYS, MAX_DAYS)


def fetch_exposure_days(
    con: Any,
    units: ibis.Table,
    events: ibis.Table,
    plan: AnalysisPlan,
    as_of: datetime,
    timings: dict[str, float],
) -> ExposureDayAggregates | None:
    """The sums of the novelty view on ``con`` (None without the daily series or a metric to
    measure), from the analysed ``units`` (stored); its time goes to ``timings``."""
    metrics = measured_metrics(plan)
    if not plan.daily or not metrics:
        return None
    started = time.perf_counter()
    days = horizon(plan)
    definitions = [plan.definitions[i] for i in metrics]
    # days count as complete up to the analysis time, or the newest event if data stopped
    newest = con.execute(queries.newest_event(events, definitions))
    as_of_us = round(as_of.timestamp() * 1_000_000)
    if newest is not None and not np.isnan(newest):
        as_of_us = min(as_of_us, int(newest))
    complete = con.to_pyarrow(queries.complete_days(units, as_of_us=as_of_us, days=days))
    sums = con.to_pyarrow(
        queries.day_sums(units, events, definitions, as_of_us=as_of_us, days=days)
    )
    n_variants = len(plan.variants)
    # units with day k complete: those with more than k complete days
    by_complete = np.zeros((days + 1, n_variants))
    for row in complete.to_pylist():
        if int(row["variant"]) < n_variants:  # a variant the experiment does not have
            by_complete[int(row["complete"]), int(row["variant"])] += float(row["units"])
    n = np.cumsum(by_complete[::-1], axis=0)[::-1][1:]
    sy = np.zeros((len(metrics), days, n_variants))
    syy = np.zeros_like(sy)
    for row in sums.to_pylist():
        v, k = int(row["variant"]), int(row["k"])
        if v >= n_variants:
            continue
        for j in range(len(metrics)):
            sy[j, k, v] = float(row[queries.sum_column(j)] or 0.0)
            syy[j, k, v] = float(row[queries.sum_sq_column(j)] or 0.0)
    timings[TIMING_KEY] = (time.perf_counter() - started) * 1000
    return ExposureDayAggregates(metrics, n, sy, syy)

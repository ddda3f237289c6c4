"""The novelty view's statistics: per day since exposure, each measured metric's own
fixed-horizon test between the arms (``compute.run_families`` on the day's sums), and the
trend of the relative effect over those days, judged as the novelty check judges a trend
across exposure cohorts (``health``: a weighted least-squares slope, ``TREND_P``,
``TREND_MIN_DAYS``).

The view is computed on demand beside a snapshot (:func:`exposure_day_view`: the experiment
page, ``results?daily=true``), like the variant page's histograms, not in the analysis's
pass: it is one more join of events to units, which every analysis would pay for a chart
only some readers open.  It is cached in the process per snapshot (settings hash × data
watermark), so asking again while the data is unchanged costs nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from splitlab import stats
from splitlab.analysis.aggregates import Aggregates, Cell, population_units
from splitlab.analysis.cache import ViewCache, view_key
from splitlab.analysis.compute import TEST_FIELDS, number, run_families
from splitlab.analysis.exposure_days import TIMING_KEY, ExposureDayAggregates, fetch_exposure_days
from splitlab.analysis.health import TREND_MIN_DAYS, TREND_P
from splitlab.analysis.plan import AnalysisPlan
from splitlab.analysis.snapshot import ExposureDayPoint, ExposureDayTrend, ResultRow, Snapshot
from splitlab.domain import Engine
from splitlab.warehouse.columns import UNITS, metric_columns
from splitlab.warehouse.scratch import ScratchTables

if TYPE_CHECKING:
    from splitlab.services import Services
    from splitlab.warehouse import Warehouse

Shape = Literal["fading", "growing", "steady", "too_few_days"]


def _plain_plan(plan: AnalysisPlan, metrics: Sequence[int]) -> AnalysisPlan:
    """The plan's ``metrics`` alone (re-numbered 0 …), without CUPED or covariates, under the
    fixed-horizon engine: each metric's own test on its raw per-day values."""
    planned = tuple(
        dataclasses.replace(
            plan.metrics[i],
            definition=plan.metrics[i].definition.model_copy(update={"cuped_days": 0}),
        )
        for i in metrics
    )
    return dataclasses.replace(
        plan, metrics=planned, covariates=(), engine=Engine.FREQUENTIST, segments=(), crossed=()
    )


def _trend_shape(points: float, slope: float, p: float, effect: float) -> Shape:
    """The novelty check's rule (``health.trend_checks``) on days since exposure: a trend
    counts below ``TREND_P`` with at least ``TREND_MIN_DAYS`` days; against the sign of the
    overall effect (or, without one, the first day's) it fades, with it it grows."""
    if points < TREND_MIN_DAYS:
        return "too_few_days"
    if not p < TREND_P:
        return "steady"
    return "fading" if slope * effect < 0 else "growing"


def exposure_day_results(
    plan: AnalysisPlan, days: ExposureDayAggregates, results: Sequence[ResultRow]
) -> tuple[list[ExposureDayPoint], list[ExposureDayTrend]]:
    """Per measured metric × treatment × day since exposure with units in both arms, the
    comparison of that day's values (in plan metric order, then treatment, then day); and per
    metric × treatment the trend of the relative effect over those days."""
    plain = _plain_plan(plan, days.metrics)
    columns = {UNITS: days.units}
    for j in range(len(days.metrics)):
        names = metric_columns(j)
        columns[names.sum], columns[names.sum_sq] = days.sums[j], days.sums_sq[j]
    n_days, n_variants = days.units.shape
    cells = [Cell("exposure_day") for _ in range(n_days)]
    aggregates = Aggregates(cells, columns, np.zeros(n_variants), np.zeros((0, n_variants)))
    overall = {(r.metric, r.variant): r for r in results if r.segment is None}
    found: list[tuple[tuple[int, int, int], ExposureDayPoint]] = []
    trends: list[tuple[tuple[int, int], ExposureDayTrend]] = []
    for family in run_families(plain, aggregates):
        test = family.test
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = stats.relative_effect_variance(
                test.control_mean, test.treatment_mean, family.control_var, family.treatment_var
            )  # (metrics, days, treatments)
            present = (family.control_n > 0) & (family.treatment_n > 0)
            trend = stats.weighted_trend(  # along the days: one fit per metric × treatment
                np.arange(n_days, dtype=float),
                np.moveaxis(np.where(present, test.rel_effect, np.nan), 1, -1),
                np.moveaxis(variance, 1, -1),
            )  # (metrics, treatments)
        for m, j in enumerate(family.metrics):
            key = plain.definitions[j].key
            for t, variant in enumerate(plan.treatments):
                for k in range(n_days):
                    if not present[m, k, t]:
                        continue
                    fields: dict[str, Any] = {
                        name: number(getattr(test, name)[m, k, t]) for name in TEST_FIELDS
                    }
                    point = ExposureDayPoint(
                        metric=key,
                        variant=variant,
                        days_since_exposure=k,
                        engine=Engine.FREQUENTIST,
                        control_n=number(family.control_n[m, k, t]),
                        treatment_n=number(family.treatment_n[m, k, t]),
                        reason=str(test.reason[m, k, t]),
                        **fields,
                    )
                    found.append(((j, t, k), point))
                row = overall.get((key, variant))
                effect = row.rel_effect if row is not None and row.rel_effect else 0.0
                if not effect:  # no overall effect to fade towards zero from: the first day's
                    early = test.rel_effect[m, :, t][np.isfinite(test.rel_effect[m, :, t])]
                    effect = float(early[0]) if early.size else 0.0
                slope, p = float(trend.slope[m, t]), float(trend.p_value[m, t])
                shape = _trend_shape(float(trend.points[m, t]), slope, p, effect)
                trends.append(
                    (
                        (j, t),
                        ExposureDayTrend(
                            metric=key,
                            variant=variant,
                            slope=number(slope),
                            p_value=number(p),
                            days=int(trend.points[m, t]),
                            shape=shape,
                        ),
                    )
                )
    found.sort(key=lambda item: item[0])
    trends.sort(key=lambda item: item[0])
    return [point for _, point in found], [trend for _, trend in trends]


CACHE_SIZE = 64
_View = tuple[tuple[ExposureDayPoint, ...], tuple[ExposureDayTrend, ...], float]
_cache: ViewCache[_View] = ViewCache(CACHE_SIZE)


def clear_cache() -> None:
    """Forget every cached view (benchmarks and tests)."""
    _cache.clear()


def with_exposure_days(*, warehouse: Warehouse, plan: AnalysisPlan, snapshot: Snapshot) -> Snapshot:
    """``snapshot`` with its days-since-exposure view (``exposure_days``,
    ``exposure_day_trends`` and the step's time in ``timings_ms``), computed from the
    warehouse now for the snapshot's own units, metrics and ``as_of``, or taken from the
    process's cache.  Unchanged when the plan has no daily series, when ``plan`` is not the
    plan the snapshot was made by (its settings changed since), or when the snapshot already
    carries the view (stored by an analysis that computed it in its pass)."""
    if not plan.daily or plan.settings_hash() != snapshot.settings_hash:
        return snapshot
    if TIMING_KEY in snapshot.timings_ms:
        return snapshot
    key = view_key(warehouse, snapshot.experiment, snapshot.settings_hash, snapshot.watermark.key)
    view = _cache.get(key)
    if view is None:
        view = _compute(warehouse, plan, snapshot)
        _cache.put(key, view)
    points, trends, ms = view
    update: dict[str, Any] = {"timings_ms": {**snapshot.timings_ms, TIMING_KEY: ms}}
    if points:
        update["exposure_days"], update["exposure_day_trends"] = points, trends
    return snapshot.model_copy(update=update)


def _compute(warehouse: Warehouse, plan: AnalysisPlan, snapshot: Snapshot) -> _View:
    started = time.perf_counter()
    con = warehouse.ibis_connection()
    events = warehouse.events_table()
    timings: dict[str, float] = {}
    with ScratchTables(con) as scratch:
        units = population_units(
            scratch,
            plan,
            exposures=warehouse.exposures_table(),
            conflicts=warehouse.conflicts_table(),
            events=events,
            segments=False,
        )
        sums = fetch_exposure_days(con, units, events, plan, snapshot.as_of, timings)
    points, trends = exposure_day_results(plan, sums, snapshot.results) if sums else ([], [])
    ms = round((time.perf_counter() - started) * 1000, 3)
    return tuple(points), tuple(trends), ms


def exposure_day_view(*, services: Services, snapshot: Snapshot) -> Snapshot:
    """:func:`with_exposure_days` for a served snapshot of the experiment's current plan."""
    from splitlab.analysis.service import load_plan

    plan, _status = load_plan(services=services, key=snapshot.experiment)
    return with_exposure_days(warehouse=services.warehouse, plan=plan, snapshot=snapshot)

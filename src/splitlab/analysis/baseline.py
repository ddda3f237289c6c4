"""A metric's recent per-unit mean and variance, from the warehouse: the baseline an intake
form or a calculator starts from before any experiment has measured the metric.

The population is the units active in the last ``days`` days before the newest exposure or
event (see ``warehouse.recent``: an exposure to any experiment or an event), each anchored at
its first activity; the metric's per-unit value follows its definition exactly as the
analysis computes it (window from the anchor, filter, capping). Data imported from the past
works as well as a live stream, since the window ends at the newest activity rather than now.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from splitlab.domain import MetricDefinition, MetricKind
from splitlab.errors import ValidationError
from splitlab.stats import RatioStats, SampleStats
from splitlab.stats.aggregates import FloatArray
from splitlab.store.metrics import get_metric, metric_from_row
from splitlab.warehouse import queries
from splitlab.warehouse.columns import UNITS, metric_columns
from splitlab.warehouse.recent import newest_activity, recent_units
from splitlab.warehouse.scratch import ScratchTables

if TYPE_CHECKING:
    from splitlab.services import Services
    from splitlab.warehouse import Warehouse

MAX_DAYS = 365
CACHE_SIZE = 256
"""Baselines kept per process, keyed by warehouse, definition, days and data watermark: a
page that asks again for unchanged data pays only the watermark query."""
_CACHE: dict[tuple[str, str, int, str], MetricBaseline | None] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class MetricBaseline:
    """Per-unit mean and variance of ``metric`` over ``units`` recently active units.

    For a binary metric the mean is the conversion rate; for a ratio metric the mean is
    Σnum / Σden and the variance the per-unit delta-method variance (what sample sizes use).
    ``daily_units`` = units / the days they arrived over (from the first unit's day to the
    last's, at most ``days``): a first guess at the eligible traffic per day."""

    metric: str
    kind: str
    days: int
    since: datetime
    until: datetime
    units: int
    mean: float | None
    variance: float | None
    daily_units: float

    @property
    def sd(self) -> float | None:
        """The per-unit standard deviation (√ variance)."""
        return math.sqrt(self.variance) if self.variance is not None else None


def _span(unit_days: list[int], days: int) -> int:
    """Days from the first unit's (UTC) day to the last's, between 1 and ``days``."""
    if not unit_days:
        return days
    return max(1, min(days, int(max(unit_days)) - int(min(unit_days)) + 1))


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def metric_baseline(*, services: Services, metric: str, days: int = 28) -> MetricBaseline | None:
    """The recent baseline of metric ``metric`` over the ``days`` days up to the newest
    exposure or event, or None when the warehouse holds neither. Quantile metrics have no
    mean baseline (422)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(
            f"days must be between 1 and {MAX_DAYS}",
            details=[{"loc": ["days"], "msg": f"between 1 and {MAX_DAYS}"}],
        )
    with services.sessions() as session:
        definition = metric_from_row(get_metric(session=session, key=metric))
    if definition.kind is MetricKind.QUANTILE:
        raise ValidationError(
            f"metric {metric!r} is a quantile metric: it has no per-unit mean to plan with",
            details=[{"loc": ["metric"], "msg": "quantile metrics have no mean baseline"}],
        )
    warehouse = services.warehouse
    key = (
        warehouse.url,
        definition.model_dump_json(),
        days,
        warehouse.watermark().cache_key(),
    )
    if key in _CACHE:
        return _CACHE[key]
    found = _compute(warehouse, definition, days)
    with _LOCK:
        _CACHE[key] = found
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return found


def _compute(
    warehouse: Warehouse, definition: MetricDefinition, days: int
) -> MetricBaseline | None:
    metric = definition.key
    con = warehouse.ibis_connection()
    exposures, events = warehouse.exposures_table(), warehouse.events_table()
    found = con.to_pyarrow(newest_activity(exposures, events)).column("newest").to_pylist()
    if not found:
        return None
    newest = found[0]
    until = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
    since = until - timedelta(days=days)
    with ScratchTables(con) as scratch:
        units = scratch.store(
            "recent_units", recent_units(exposures, events, since=since, until=until)
        )
        per_unit = queries.unit_aggregates(
            units, events, [definition], unit_values=warehouse.unit_values_table()
        )
        stored = scratch.store("recent_values", per_unit.table)
        values = queries.metric_values(
            per_unit._replace(table=stored), [definition], as_of=until + timedelta(microseconds=1)
        )
        rows = con.to_pyarrow(
            queries.sufficient_statistics(values, [definition], n_segments=0)
        ).to_pydict()
    names = metric_columns(0)

    def total(column: str) -> FloatArray:
        return np.asarray(np.nansum(np.asarray(rows.get(column, []), dtype=np.float64)))

    n_sum = total(UNITS)
    n = float(n_sum)
    mean: float | None = None
    variance: float | None = None
    if n >= 2:
        if definition.kind is MetricKind.RATIO:
            ratio = RatioStats(n_sum, *(total(c) for c in names.covariate_sums))
            mean, variance = _finite(float(ratio.mean)), _finite(float(ratio.variance))
        else:
            sample = SampleStats(n_sum, total(names.sum), total(names.sum_sq))
            mean, variance = _finite(float(sample.mean)), _finite(float(sample.variance))
    return MetricBaseline(
        metric=metric,
        kind=definition.kind.value,
        days=days,
        since=since,
        until=until,
        units=int(n),
        mean=mean,
        variance=variance,
        daily_units=n / _span(rows.get("day", []), days),
    )

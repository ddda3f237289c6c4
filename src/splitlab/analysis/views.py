"""Figures the dashboard draws that are not in the snapshot itself: the power curve over MDE
and progress to the planned sample (from a snapshot's overall rows), exposures per day (from
its cumulative daily points), and per-unit value histograms binned in the warehouse.

The web package only renders these; every number is computed here (with ``splitlab.stats``)
or in the warehouse (``warehouse.queries.value_range`` / ``value_histogram``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from splitlab.analysis.plan import AnalysisPlan
from splitlab.analysis.service import load_plan
from splitlab.analysis.snapshot import ResultRow, Snapshot
from splitlab.domain import MetricKind, MetricRole
from splitlab.stats.power import power_from_standardized, standardized_effect_for_power
from splitlab.warehouse import queries
from splitlab.warehouse.columns import metric_columns
from splitlab.warehouse.scratch import ScratchTables

if TYPE_CHECKING:
    from splitlab.services import Services

MAX_BINS = 100
"""The most histogram bins one request may ask for."""


@dataclass(frozen=True)
class PowerCurve:
    """Power over relative MDE for one treatment on the primary metric: now, and at the
    planned sample (when the plan has an MDE), with progress towards that sample."""

    metric: str
    variant: str
    alpha: float
    target_power: float
    mdes: list[float]
    """Relative effects (fractions of the control mean) the curve is evaluated at."""
    power_now: list[float]
    """Power at each MDE with the units analysed so far."""
    power_planned: list[float] | None
    """Power at each MDE at the planned sample (null without a planned MDE)."""
    mde_now: float | None
    """The relative effect detectable now at the target power."""
    planned_mde: float | None
    """The plan's MDE (relative)."""
    n_now: float | None
    """Control units analysed."""
    n_required: float | None
    """Control units the planned MDE needs."""
    progress: float | None
    """n_now ÷ n_required, capped at 1."""
    days_remaining: int | None
    """Days until n_required at the enrolment rate so far."""


def _primary_rows(snapshot: Snapshot) -> list[ResultRow]:
    metrics = snapshot.settings.get("metrics", [])
    primary = [m["definition"]["key"] for m in metrics if m.get("role") == MetricRole.PRIMARY.value]
    wanted = primary[:1] or [m["definition"]["key"] for m in metrics[:1]]
    return [r for r in snapshot.overall() if r.metric in wanted]


def power_curves(snapshot: Snapshot, *, points: int = 41) -> list[PowerCurve]:
    """Power over relative MDE for each treatment on the primary metric.

    The standard error of the relative effect follows from the snapshot's MDE now:
    SE = mde_now ÷ s*(α, target power) (``stats.power.standardized_effect_for_power``), and at
    the planned sample SE × √(n_now ÷ n_required); power(δ) = Φ(δ/SE − z) + Φ(−δ/SE − z)
    (``stats.power.power_from_standardized``).  The grid runs from 0 to twice the larger of
    the MDE now and the planned MDE."""
    alpha = float(snapshot.settings.get("alpha", 0.05))
    target = float(snapshot.settings.get("power", 0.8))
    planned = snapshot.settings.get("mde")
    s_star = float(standardized_effect_for_power(alpha=alpha, power=target))
    curves = []
    for row in _primary_rows(snapshot):
        mde_now = row.mde
        n_now = row.control_n
        n_required = row.n_required
        progress = None
        if n_now is not None and n_required:
            progress = min(n_now / n_required, 1.0)
        if mde_now is None or not math.isfinite(mde_now) or mde_now <= 0 or s_star <= 0:
            curves.append(
                PowerCurve(
                    row.metric,
                    row.variant,
                    alpha,
                    target,
                    [],
                    [],
                    None,
                    None,
                    planned,
                    n_now,
                    n_required,
                    progress,
                    row.days_remaining,
                )
            )
            continue
        se_now = mde_now / s_star
        top = 2.0 * max(mde_now, float(planned) if planned else 0.0)
        grid = np.linspace(0.0, top, points)
        now = power_from_standardized(grid / se_now, alpha=alpha)
        at_plan = None
        if n_now and n_required:
            se_plan = se_now * math.sqrt(n_now / n_required)
            at_plan = _rounded(power_from_standardized(grid / se_plan, alpha=alpha))
        curves.append(
            PowerCurve(
                metric=row.metric,
                variant=row.variant,
                alpha=alpha,
                target_power=target,
                mdes=_rounded(grid, 12),
                power_now=_rounded(now),
                power_planned=at_plan,
                mde_now=mde_now,
                planned_mde=float(planned) if planned is not None else None,
                n_now=n_now,
                n_required=n_required,
                progress=progress,
                days_remaining=row.days_remaining,
            )
        )
    return curves


def _rounded(values: Any, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values, dtype=float)]


def exposures_per_day(snapshot: Snapshot) -> dict[str, list[tuple[date, float]]]:
    """New units per UTC day per variant, from the cumulative daily points of the first
    metric (every metric counts the same units): the day's cumulative n minus the day
    before's.  Empty when the snapshot has no daily points."""
    if not snapshot.daily:
        return {}
    first = snapshot.daily[0].metric
    control = snapshot.units[0].variant if snapshot.units else "control"
    cumulative: dict[str, dict[date, float]] = {}
    for point in snapshot.daily:
        if point.metric != first:
            continue
        if point.control_n is not None:
            cumulative.setdefault(control, {})[point.day] = point.control_n
        if point.treatment_n is not None:
            cumulative.setdefault(point.variant, {})[point.day] = point.treatment_n
    out: dict[str, list[tuple[date, float]]] = {}
    for variant, series in cumulative.items():
        before = 0.0
        rows = []
        for day in sorted(series):
            rows.append((day, series[day] - before))
            before = series[day]
        out[variant] = rows
    return out


@dataclass(frozen=True)
class Histogram:
    """Per-unit values of one metric binned in the warehouse, per variant."""

    metric: str
    name: str
    """The metric's display name."""
    kind: str
    column: str
    """``value`` (the unit's metric value, capped as analysed) or ``quantile_value``."""
    edges: list[float]
    """bins + 1 edges; the last bin also holds every value past its right edge."""
    counts: dict[str, list[int]]
    """Units per bin, per variant."""
    beyond: dict[str, int]
    """Units past the last edge (the heavy tail shown in the last bin), per variant."""
    n: dict[str, int]
    """Units with a value, per variant."""
    low: float | None
    high: float | None
    """The smallest and largest value seen."""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain dicts and lists."""
        return asdict(self)


def _edges(low: float, upper: float, high: float, kind: MetricKind, bins: int) -> list[float]:
    """Bin edges: integers get one bin per value when few enough; otherwise ``bins`` equal
    bins from the smallest value to the upper quantile (or the largest, without a tail)."""
    right = upper if upper > low else high
    if kind in (MetricKind.BINARY, MetricKind.COUNT) and right - low <= bins:
        return [low - 0.5 + k for k in range(int(right - low) + 2)]
    if right <= low:
        return [low - 0.5, low + 0.5]
    width = (right - low) / bins
    return [low + k * width for k in range(bins + 1)]


def variant_histograms(*, services: Services, key: str, bins: int = 30) -> list[Histogram]:
    """Histograms of every (non-ratio) metric's per-unit values per variant, binned in the
    warehouse: the per-unit values are the analysis's (``queries.metric_values``, capped),
    their range and upper 99th percentile come from one aggregate and the counts per bin from
    another, so only ``bins`` numbers per variant leave the engine."""
    if not 1 <= bins <= MAX_BINS:
        from splitlab.errors import ValidationError

        raise ValidationError(
            f"bins must be between 1 and {MAX_BINS}",
            details=[{"loc": ["bins"], "msg": f"1 … {MAX_BINS}"}],
        )
    plan, _status = load_plan(services=services, key=key)
    warehouse = services.warehouse
    con = warehouse.ibis_connection()
    as_of = warehouse.watermark().last_ingested_at or datetime.now(UTC)
    out: list[Histogram] = []
    with ScratchTables(con) as scratch:
        units = scratch.units(
            warehouse.exposures_table(),
            warehouse.conflicts_table(),
            experiment_key=plan.key,
            variants=plan.variants,
            segments=(),
        )
        per_unit = queries.unit_aggregates(
            units,
            warehouse.events_table(),
            plan.definitions,
            unit_values=warehouse.unit_values_table(),
        )
        stored = scratch.store("values", per_unit.table)
        values = queries.metric_values(
            per_unit._replace(table=stored), plan.definitions, as_of=as_of
        )
        for index, metric in enumerate(plan.definitions):
            out.append(_histogram(con, values, plan, index, metric.kind, bins))
    return out


def _histogram(
    con: Any, values: Any, plan: AnalysisPlan, index: int, kind: MetricKind, bins: int
) -> Histogram:
    names = metric_columns(index)
    metric = plan.definitions[index]
    quantile = kind is MetricKind.QUANTILE
    column = names.quantile_value if quantile else names.value
    label = "quantile_value" if quantile else "value"
    empty = {v: 0 for v in plan.variants}
    summary = con.to_pyarrow(queries.value_range(values, column)).to_pylist()[0]
    if not summary["n"]:
        return Histogram(
            metric.key, metric.name or metric.key, kind.value, label, [], {}, empty, empty,
            None, None, "no units",
        )  # fmt: skip
    low, high, upper = float(summary["low"]), float(summary["high"]), float(summary["upper"])
    edges = _edges(low, upper, high, kind, bins)
    count = len(edges) - 1
    rows = con.to_pyarrow(
        queries.value_histogram(values, column, low=edges[0], high=edges[-1], bins=count)
    ).to_pylist()
    counts = {v: [0] * count for v in plan.variants}
    beyond = dict(empty)
    n = dict(empty)
    for row in rows:
        v = int(row["variant"])
        if v >= len(plan.variants):
            continue
        variant = plan.variants[v]
        counts[variant][int(row["bin"])] += int(row["units"])
        beyond[variant] += int(row["beyond"] or 0)
        n[variant] += int(row["units"])
    note = ""
    if any(beyond.values()):
        note = f"the last bin also holds the units above {edges[-1]:.4g} (up to {high:.4g})"
    if metric.kind is MetricKind.RATIO:
        note = "per-unit numerator values (the ratio is Σnumerator ÷ Σdenominator)"
    return Histogram(
        metric.key, metric.name or metric.key, kind.value, label, _rounded(edges, 9), counts,
        beyond, n, low, high, note,
    )  # fmt: skip

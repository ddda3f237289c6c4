"""The model / prompt leaderboard: every configuration seen in the selected experiments,
ranked on quality, cost per request and latency, with the Pareto frontier marked.

A *configuration* is one variant of one experiment, named by its payload (``model``,
``prompt``… — :func:`splitlab.decisions.ml.config_label`).  Its numbers are its arm's value
and its effect against its experiment's control, with the snapshot's CI; the parts (quality,
cost, latency) are assigned as in :mod:`splitlab.decisions.ml`, latency ranking on the
highest quantile the experiment measures (p99 over p95 over a mean).

**The frontier** is computed within each experiment, where configurations were measured on
the same units: configuration B dominates A when B is at least as good on every part both
have (point estimates) and *significantly* better on at least one — B's estimate beats A's by
more than z₁₋α/₂ · √(SE_A² + SE_B²), at the experiment's α.  A treatment's SE is its
comparison's CI half-width ÷ its critical value; the control's is 0 (it is the reference), so
against the control the test is the comparison's own; between two treatments √(SE_A² + SE_B²)
overstates the SE (both share the control), so a dominance is only claimed when it holds
conservatively.  Listed prices (``cost_per_request`` in every payload) are exact: any cheaper
price is significantly cheaper.  Rule and proof of the bound: :mod:`splitlab.stats.pareto`.
Configurations of different experiments are not compared with each other (different units,
often different metrics); the table still sorts them side by side.

Per stored snapshot id, the metric numbers and the daily series are summarised once and kept
in process (a snapshot never changes), so a warm leaderboard reads only the experiment list
and the variant payloads.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from splitlab.analysis.snapshot import Snapshot
from splitlab.decisions.ml import (
    COST_FIELD,
    ML_TYPES,
    Cell,
    MetricDef,
    config_label,
    metric_defs,
    metric_roles,
    payload_number,
    treatment_cell,
)
from splitlab.stats.pareto import pareto_frontier
from splitlab.store.fleet import FleetExperiment, fleet_experiments, snapshot_payloads
from splitlab.store.variant_payloads import variant_payloads

if TYPE_CHECKING:
    from splitlab.services import Services

PARTS = ("quality", "cost", "latency")
"""What the leaderboard ranks on, in order."""
SPARK_POINTS = 60
"""Most daily points kept per sparkline (the newest)."""


@dataclass(frozen=True)
class Measure:
    """One part of one configuration: the arm's value and its effect against control."""

    metric: str
    label: str
    higher_is_better: bool
    value: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    rel: float | None
    p_value: float | None
    significant: bool
    good: bool | None
    se: float
    """SE of the effect (0 for the control and for listed prices; NaN when unknown)."""
    exact: bool = False
    """A listed price rather than a measurement."""
    spark: tuple[float, ...] = ()
    """The arm's cumulative value per day, oldest first."""

    def to_json(self) -> dict[str, Any]:
        """Plain data (NaN → None)."""
        out = {k: _clean(getattr(self, k)) for k in self.__dataclass_fields__ if k != "spark"}
        out["spark"] = list(self.spark)
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class _Summary:
    """What one stored snapshot gives the leaderboard (kept per snapshot id)."""

    experiment: str
    """The snapshot's experiment (a cached summary is used only for that experiment)."""
    variants: tuple[str, ...]
    alpha: float
    parts: dict[str, dict[str, Measure]]
    """Part → variant → measure (cost from a metric; listed prices are added later)."""


_CACHE: OrderedDict[tuple[str, int], _Summary | None] = OrderedDict()
"""Summaries by (app-store URL, snapshot id): ids are only unique within one store."""
_LOCK = threading.Lock()
_CACHE_SIZE = 20_000


def clear_cache() -> None:
    """Forget the summaries (tests and benchmarks measuring a cold start)."""
    with _LOCK:
        _CACHE.clear()


def _crit(alpha: float, df: float | None) -> float:
    if df is not None and math.isfinite(df) and df > 0:
        return float(special.stdtrit(df, 1.0 - alpha / 2.0))
    return float(special.ndtri(1.0 - alpha / 2.0))


def _spark(
    daily: list[dict[str, Any]], metric: str, variant: str, control: bool
) -> tuple[float, ...]:
    field_name = "control_mean" if control else "treatment_mean"
    points = []
    for point in daily:
        if point.get("metric") != metric or (not control and point.get("variant") != variant):
            continue
        value = point.get(field_name)
        if isinstance(value, int | float) and math.isfinite(value):
            points.append((str(point.get("day")), float(value)))
    by_day = dict(points)  # the control appears once per treatment: one value per day
    return tuple(round(v, 9) for _, v in sorted(by_day.items())[-SPARK_POINTS:])


def _measure(cell: Cell, se: float, spark: tuple[float, ...]) -> Measure:
    return Measure(
        metric=cell.metric,
        label=cell.label,
        higher_is_better=cell.higher_is_better,
        value=cell.value,
        delta=cell.delta,
        ci_low=cell.ci_low,
        ci_high=cell.ci_high,
        rel=cell.rel,
        p_value=cell.p_value,
        significant=cell.significant,
        good=cell.good,
        se=se,
        spark=spark,
    )


def summarise(payload: dict[str, Any]) -> _Summary | None:
    """The leaderboard's numbers of one stored snapshot payload (None when unreadable)."""
    body = {k: v for k, v in payload.items() if k != "daily"}
    body["results"] = [r for r in payload.get("results", []) if r.get("segment") is None]
    try:
        snapshot = Snapshot.from_json(body)
    except ValueError:
        return None
    if not snapshot.units:
        return None
    defs = metric_defs(snapshot)
    roles = metric_roles(defs)
    alpha = float(snapshot.settings.get("alpha", 0.05))
    variants = tuple(u.variant for u in snapshot.units)
    daily = payload.get("daily") or []
    keys = {"quality": roles.quality, "cost": roles.cost, "latency": roles.ranking_latency(defs)}
    parts: dict[str, dict[str, Measure]] = {}
    for part, key in keys.items():
        if key is None:
            continue
        metric: MetricDef = defs[key]
        rows = {r.variant: r for r in snapshot.overall() if r.metric == key}
        if not rows:
            continue
        first = next(iter(rows.values()))
        by_variant: dict[str, Measure] = {}
        control_cell = Cell(
            key, metric.label, metric.higher_is_better, first.control_mean, first.control_n
        )
        by_variant[variants[0]] = _measure(control_cell, 0.0, _spark(daily, key, variants[0], True))
        for v in variants[1:]:
            row = rows.get(v)
            if row is None:
                continue
            low, high = row.abs_ci_low, row.abs_ci_high
            se = (
                (high - low) / (2.0 * _crit(alpha, row.df))
                if low is not None and high is not None
                else math.nan
            )
            by_variant[v] = _measure(
                treatment_cell(row, metric, alpha), se, _spark(daily, key, v, False)
            )
        parts[part] = by_variant
    return _Summary(experiment=snapshot.experiment, variants=variants, alpha=alpha, parts=parts)


def _price(value: float, control: float, *, is_control: bool) -> Measure:
    delta = None if is_control else value - control
    return Measure(
        metric=COST_FIELD,
        label="Cost per request (listed price)",
        higher_is_better=False,
        value=value,
        delta=delta,
        ci_low=delta,
        ci_high=delta,
        rel=None if delta is None or control == 0 else delta / control,
        p_value=None,
        significant=bool(delta),
        good=None if not delta else delta < 0,
        se=0.0,
        exact=True,
    )


@dataclass
class Entry:
    """One configuration on the leaderboard."""

    experiment: str
    name: str
    type: str
    team: str
    status: str
    variant: str
    is_control: bool
    config: str
    payload: Any
    measures: dict[str, Measure]
    frontier: bool = True
    dominated_by: str | None = None
    ranks: dict[str, int] = field(default_factory=dict)
    """Rank within its experiment per part (1 = best estimate)."""

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "experiment": self.experiment,
            "name": self.name,
            "type": self.type,
            "team": self.team,
            "status": self.status,
            "variant": self.variant,
            "is_control": self.is_control,
            "config": self.config,
            "payload": self.payload,
            "frontier": self.frontier,
            "dominated_by": self.dominated_by,
            "ranks": self.ranks,
            **{part: (m.to_json() if (m := self.measures.get(part)) else None) for part in PARTS},
        }


def _oriented(measure: Measure | None) -> tuple[float, float]:
    """(estimate with higher better, SE): a measurement's effect vs control (0 for the
    control), a listed price's negated value."""
    if measure is None:
        return math.nan, math.nan
    sign = 1.0 if measure.higher_is_better else -1.0
    if measure.exact:
        return (sign * measure.value if measure.value is not None else math.nan), 0.0
    if measure.delta is None:
        return (0.0, 0.0) if measure.se == 0.0 else (math.nan, math.nan)
    return sign * measure.delta, measure.se


def mark_frontier(entries: list[Entry], alpha: float) -> None:
    """Set ``frontier``, ``dominated_by`` and per-part ``ranks`` on one experiment's
    configurations (module docstring for the rule)."""
    if not entries:
        return
    pairs = [[_oriented(e.measures.get(part)) for part in PARTS] for e in entries]
    estimates = np.array([[p[0] for p in row] for row in pairs], dtype=np.float64)
    ses = np.array([[p[1] for p in row] for row in pairs], dtype=np.float64)
    result = pareto_frontier(estimates, ses, crit=float(special.ndtri(1.0 - alpha / 2.0)))
    for i, entry in enumerate(entries):
        entry.frontier = not bool(result.dominated[i])
        j = int(result.dominated_by[i])
        entry.dominated_by = entries[j].variant if j >= 0 else None
    for m, part in enumerate(PARTS):
        column = estimates[:, m]
        if np.all(np.isnan(column)):
            continue
        order = np.argsort(np.where(np.isnan(column), np.inf, -column), kind="stable")
        for rank, i in enumerate(order, start=1):
            if not np.isnan(column[i]):
                entries[int(i)].ranks[part] = rank


def _summaries(
    services: Services, experiments: list[FleetExperiment]
) -> dict[int, _Summary | None]:
    store = services.settings.resolved_database_url()
    wanted = {e.snapshot_id: e.key for e in experiments if e.snapshot_id is not None}
    have: dict[int, _Summary | None] = {}
    with _LOCK:
        for i, key in wanted.items():
            if (store, i) not in _CACHE:
                continue
            cached = _CACHE[(store, i)]
            if cached is None or cached.experiment == key:  # None: unreadable, kept as such
                have[i] = cached
    missing = [i for i in wanted if i not in have]
    if missing:
        with services.sessions() as session:
            payloads = snapshot_payloads(session=session, ids=missing)
        made = {i: summarise(p) for i, p in payloads.items()}
        with _LOCK:
            for i, summary in made.items():
                _CACHE[(store, i)] = summary
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        have |= made
    return have


@dataclass(frozen=True)
class Selection:
    """Which experiments the leaderboard reads (empty tuples: no restriction)."""

    types: tuple[str, ...] = ML_TYPES
    teams: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    experiments: tuple[str, ...] = ()
    search: str = ""

    def keeps(self, e: FleetExperiment) -> bool:
        """Whether experiment ``e`` is selected."""
        if self.types and e.type not in self.types:
            return False
        if self.teams and e.team not in self.teams:
            return False
        if self.statuses and e.status not in self.statuses:
            return False
        return not self.experiments or e.key in self.experiments


def leaderboard(*, services: Services, selection: Selection | None = None) -> list[Entry]:
    """Every configuration of the selected experiments that have a snapshot, with its
    measures, frontier flag and ranks; experiments newest first, control first within one.
    ``selection.search`` keeps configurations whose label, variant or experiment contains
    it (case-insensitive) — the frontier is still computed on the whole experiment."""
    selection = selection or Selection()
    with services.sessions() as session:
        experiments = [e for e in fleet_experiments(session=session) if selection.keeps(e)]
        experiments = [e for e in experiments if e.snapshot_id is not None]
        payloads = variant_payloads(session=session, keys=[e.key for e in experiments])
    summaries = _summaries(services, experiments)
    needle = selection.search.strip().lower()
    out: list[Entry] = []
    for e in experiments:
        assert e.snapshot_id is not None
        summary = summaries.get(e.snapshot_id)
        if summary is None:
            continue
        arms = payloads.get(e.key, {})
        prices = {v: payload_number(arms.get(v), COST_FIELD) for v in summary.variants}
        listed = all(p is not None for p in prices.values())
        entries = []
        for v in summary.variants:
            measures = {p: m for p, by in summary.parts.items() if (m := by.get(v)) is not None}
            if listed:
                price, base = prices[v], prices[summary.variants[0]]
                assert price is not None and base is not None
                measures["cost"] = _price(price, base, is_control=v == summary.variants[0])
            entries.append(
                Entry(
                    experiment=e.key,
                    name=e.name,
                    type=e.type,
                    team=e.team,
                    status=e.status,
                    variant=v,
                    is_control=v == summary.variants[0],
                    config=config_label(v, arms.get(v)),
                    payload=arms.get(v),
                    measures=measures,
                )
            )
        mark_frontier(entries, summary.alpha)
        if needle:
            entries = [
                x
                for x in entries
                if needle in f"{x.config} {x.variant} {x.experiment} {x.name}".lower()
            ]
        out.extend(entries)
    return out


def configurations(entries: list[Entry]) -> list[dict[str, Any]]:
    """Each configuration label once: the experiments it was seen in and how often it was
    on its experiment's frontier."""
    seen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        item = seen.setdefault(
            entry.config, {"config": entry.config, "experiments": [], "frontier": 0}
        )
        item["experiments"].append(entry.experiment)
        item["frontier"] += int(entry.frontier)
    return sorted(
        seen.values(), key=lambda d: (-d["frontier"], -len(d["experiments"]), d["config"])
    )

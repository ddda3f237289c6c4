"""An experiment's configuration and metric definitions → the plan one analysis follows.

The plan is plain data (no sessions, no connections): everything the warehouse query and the
statistics need, plus the settings hash that keys the snapshot cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from splitlab.domain import (
    BinaryTest,
    Correction,
    Covariate,
    Direction,
    Engine,
    ExperimentSpec,
    MetricDefinition,
    MetricKind,
    MetricRole,
    RelativeInterval,
    Threshold,
    ThresholdScale,
)
from splitlab.domain.experiments import Trigger
from splitlab.domain.limits import property_name_problem
from splitlab.errors import ValidationError
from splitlab.warehouse.queries import CovariateSource

ADJUSTABLE = (MetricKind.BINARY, MetricKind.COUNT, MetricKind.SUM)
"""Metric kinds a covariate can adjust (and a metric covariate can be read from)."""

ANALYSIS_VERSION = 3
"""Bump when the analysis code changes its numbers or its results' shape: old snapshots then no
longer match (3: overall rows carry their thresholds — margin, min_lift and their scales —
segment rows the p-value corrected across their cells, and snapshots a heterogeneity test)."""


@dataclass(frozen=True)
class PlannedMetric:
    """One metric of the experiment in its role; ``margin`` is the guardrail margin in force
    (on ``margin_scale``), ``min_lift`` the minimum practical lift in force, if any."""

    definition: MetricDefinition
    role: MetricRole
    margin: float | None
    margin_scale: ThresholdScale = ThresholdScale.RELATIVE
    min_lift: Threshold | None = None

    def thresholds(self) -> dict[str, Any]:
        """The settings keys of the thresholds: ``margin_scale`` only when absolute (a margin
        without it is relative, as margins always were), ``min_lift`` and ``min_lift_scale``
        only when there is a minimum lift."""
        out: dict[str, Any] = {}
        if self.margin is not None and self.margin_scale is ThresholdScale.ABSOLUTE:
            out["margin_scale"] = self.margin_scale.value
        if self.min_lift is not None:
            out["min_lift"] = self.min_lift.value
            out["min_lift_scale"] = self.min_lift.scale.value
        return out

    @property
    def key(self) -> str:
        return self.definition.key

    @property
    def higher_is_better(self) -> bool:
        return self.definition.direction is Direction.INCREASE


@dataclass(frozen=True)
class PlannedCovariate:
    """A named covariate: what it is (``spec``), where the warehouse reads it (``source``),
    and the plan positions of the metrics it adjusts."""

    spec: Covariate
    source: CovariateSource
    metrics: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class AnalysisPlan:
    """What to analyse and how: variants (control first), metrics, engine and options."""

    key: str
    variants: tuple[str, ...]
    weights: tuple[float, ...]
    metrics: tuple[PlannedMetric, ...]
    engine: Engine
    alpha: float
    power: float
    mde: float | None
    correction: Correction
    segments: tuple[str, ...]
    max_days: int | None
    start_at: datetime | None
    top_n: int
    relative_ci: RelativeInterval = RelativeInterval.DELTA
    binary_test: BinaryTest = BinaryTest.Z
    covariates: tuple[PlannedCovariate, ...] = ()
    crossed: tuple[tuple[str, str], ...] = ()
    event_quantiles: frozenset[int] = frozenset()
    """Positions of the quantile metrics taken over all events (``plan.event_quantiles``)."""
    trigger: Trigger | None = None
    """The activation condition (``plan.trigger``): analyse triggered units only."""
    unit_segments: tuple[str, ...] = ()
    """The segments (at the end of ``segments``) read from the unit table's text attributes
    instead of the exposure attributes (``plan.unit_segments``)."""
    daily: bool = True
    """Whether to compute the cumulative daily series (and the checks that read it); off only
    for callers that want the overall and segment results alone (the peer benchmark)."""

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Every exposure attribute the analysis breaks down by: the segments, then the
        attributes only crossed segments use."""
        extra = [n for pair in self.crossed for n in pair if n not in self.segments]
        return self.segments + tuple(dict.fromkeys(extra))

    @property
    def crossed_positions(self) -> tuple[tuple[int, int], ...]:
        """Each crossed pair as positions in :attr:`dimensions`."""
        where = {name: k for k, name in enumerate(self.dimensions)}
        return tuple((where[a], where[b]) for a, b in self.crossed)

    def adjusted(self) -> dict[int, tuple[int, ...]]:
        """Metric position → the positions of the named covariates adjusting it."""
        out: dict[int, list[int]] = {}
        for j, covariate in enumerate(self.covariates):
            for i in covariate.metrics:
                out.setdefault(i, []).append(j)
        return {i: tuple(js) for i, js in sorted(out.items())}

    def covariate_names(self, index: int) -> tuple[str, ...]:
        """The covariates of metric ``index`` in the order of the regression: its own
        pre-period first (``pre:<key>``) when it has one, then the named ones."""
        metric = self.metrics[index].definition
        own = (f"pre:{metric.key}",) if metric.cuped_days > 0 else ()
        return own + tuple(self.covariates[j].name for j in self.adjusted().get(index, ()))

    @property
    def control(self) -> str:
        return self.variants[0]

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.variants[1:]

    @property
    def definitions(self) -> list[MetricDefinition]:
        return [m.definition for m in self.metrics]

    def settings(self) -> dict[str, Any]:
        """The JSON form of everything that changes the numbers (hashed for the cache).

        Options added after ANALYSIS_VERSION 2 appear only when they differ from their
        default, so a plan that does not use them keeps its hash (and its cached snapshots)."""
        settings = {
            "analysis_version": ANALYSIS_VERSION,
            "experiment": self.key,
            "variants": [
                {"key": k, "weight": w} for k, w in zip(self.variants, self.weights, strict=True)
            ],
            "metrics": [
                {
                    "role": m.role.value,
                    "margin": m.margin,
                    **m.thresholds(),
                    "definition": definition_settings(m.definition),
                }
                for m in self.metrics
            ],
            "engine": self.engine.value,
            "alpha": self.alpha,
            "power": self.power,
            "mde": self.mde,
            "correction": self.correction.value,
            "segments": list(self.segments),
            "max_days": self.max_days,
            "start_at": self.start_at.isoformat() if self.start_at else None,
            "top_n": self.top_n,
            "relative_ci": self.relative_ci.value,
        }
        if self.binary_test is not BinaryTest.Z:
            settings["binary_test"] = self.binary_test.value
        if not self.daily:
            settings["daily"] = False
        if self.event_quantiles:
            settings["event_quantiles"] = [
                m.key for i, m in enumerate(self.metrics) if i in self.event_quantiles
            ]
            if self.segments:  # they gained segment rows: older snapshots lack them
                settings["event_quantile_segments"] = True
        if self.crossed:
            settings["crossed"] = [list(pair) for pair in self.crossed]
        if self.trigger is not None:
            settings["trigger"] = self.trigger.model_dump(mode="json")
        if self.unit_segments:
            settings["unit_segments"] = list(self.unit_segments)
        if self.covariates:
            settings["covariates"] = [
                c.spec.model_dump(
                    mode="json", exclude={"column"} if c.spec.column is None else None
                )
                | {"adjusts": [self.metrics[i].key for i in c.metrics]}
                for c in self.covariates
            ]
        return settings

    def settings_hash(self) -> str:
        canonical = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def definition_settings(definition: MetricDefinition) -> dict[str, Any]:
    """A metric definition's JSON in the settings: ``source`` and ``column`` only for a
    ``source: units`` metric, so an events metric keeps the hash it had before they existed."""
    data = definition.model_dump(mode="json")
    if definition.source == "events":
        data.pop("source", None)
        data.pop("column", None)
    return data


def _check_names(spec: ExperimentSpec, metrics: list[PlannedMetric]) -> None:
    """Segments and metric properties must be property names. Input is checked when it is
    saved; this catches definitions stored before that check existed (422, not a failed
    query)."""
    problems: list[tuple[str, str]] = []
    for index, segment in enumerate(spec.plan.segments):
        problem = property_name_problem(segment)
        if problem:
            problems.append((f"plan.segments[{index}]", problem))
    for metric in metrics:
        definition = metric.definition
        names = list(definition.filter)
        if definition.value_field is not None:
            names.append(definition.value_field)
        for name in names:
            problem = property_name_problem(name)
            if problem:
                problems.append((f"metric {definition.key}", f"{name[:50]!r} {problem}"))
    if problems:
        summary = "; ".join(f"{where}: {problem}" for where, problem in problems)
        raise ValidationError(
            f"experiment {spec.key!r} cannot be analysed: {summary}",
            details=[{"loc": [where], "msg": problem} for where, problem in problems],
        )


def build_plan(
    spec: ExperimentSpec, definitions: dict[str, MetricDefinition], *, top_n: int = 10
) -> AnalysisPlan:
    """Combine an experiment with its metric definitions (keyed by metric key).

    The control variant comes first (the first variant when none is flagged).  A guardrail's
    margin is the experiment's override, else the metric's own (each on its own scale).
    """
    if len(spec.variants) < 2:
        raise ValidationError(f"experiment {spec.key!r} needs at least two variants to analyse")
    ordered = sorted(spec.variants, key=lambda v: not v.is_control)
    metrics: list[PlannedMetric] = []
    seen: set[str] = set()

    plan = spec.plan
    unknown = sorted(set(plan.min_lifts) - set(spec.metrics.all_keys()))
    if unknown:
        raise ValidationError(
            f"experiment {spec.key!r}: plan.min_lifts names metrics it does not use: "
            + ", ".join(unknown),
            details=[
                {"loc": ["plan", "min_lifts", key], "msg": "not a metric of the experiment"}
                for key in unknown
            ],
        )

    def add(
        key: str,
        role: MetricRole,
        margin: float | None,
        scale: ThresholdScale = ThresholdScale.RELATIVE,
    ) -> None:
        if key in seen:
            return
        seen.add(key)
        definition = definitions.get(key)
        if definition is None:
            raise ValidationError(f"experiment {spec.key!r} uses unknown metric {key!r}")
        min_lift = plan.min_lifts.get(key)
        if min_lift is None and role is not MetricRole.GUARDRAIL:
            min_lift = plan.min_lift
        metrics.append(PlannedMetric(definition, role, margin, scale, min_lift))

    if spec.metrics.primary:
        add(spec.metrics.primary, MetricRole.PRIMARY, None)
    for key in spec.metrics.secondary:
        add(key, MetricRole.SECONDARY, None)
    for guard in spec.metrics.guardrails:
        definition = definitions.get(guard.key)
        if guard.margin is not None:
            add(guard.key, MetricRole.GUARDRAIL, guard.margin, guard.margin_scale)
        elif definition is not None:  # the metric's own margin, on its own scale
            add(guard.key, MetricRole.GUARDRAIL, definition.margin, definition.margin_scale)
        else:
            add(guard.key, MetricRole.GUARDRAIL, None)  # unknown: add() says so
    _check_names(spec, metrics)
    both = sorted(set(plan.unit_segments) & set(plan.segments))
    if both or len(set(plan.unit_segments)) != len(plan.unit_segments):
        raise ValidationError(
            f"experiment {spec.key!r}: plan.unit_segments repeats a name or names an exposure "
            f"segment too: {', '.join(both) or 'a repeated name'}",
            details=[{"loc": ["plan", "unit_segments"], "msg": "repeated name"}],
        )
    covariates = _plan_covariates(spec, metrics)
    position = {m.key: i for i, m in enumerate(metrics)}
    wrong = [
        key
        for key in plan.event_quantiles
        if key not in position
        or metrics[position[key]].definition.kind is not MetricKind.QUANTILE
        or metrics[position[key]].definition.source == "units"
    ]
    if wrong:
        raise ValidationError(
            f"experiment {spec.key!r}: plan.event_quantiles names metrics that are not its "
            f"quantile metrics: {', '.join(wrong)}",
            details=[
                {"loc": ["plan", "event_quantiles"], "msg": f"not a quantile metric: {k}"}
                for k in wrong
            ],
        )
    return AnalysisPlan(
        key=spec.key,
        variants=tuple(v.key for v in ordered),
        weights=tuple(v.weight for v in ordered),
        metrics=tuple(metrics),
        engine=plan.engine,
        alpha=plan.alpha,
        power=plan.power,
        mde=plan.mde,
        correction=plan.correction,
        segments=tuple(plan.segments) + tuple(plan.unit_segments),
        max_days=plan.max_days,
        start_at=spec.start_at,
        top_n=top_n,
        relative_ci=plan.relative_ci,
        binary_test=plan.binary_test,
        covariates=covariates,
        crossed=tuple((a, b) for a, b in plan.crossed),
        event_quantiles=frozenset(position[key] for key in plan.event_quantiles),
        trigger=plan.trigger,
        unit_segments=tuple(plan.unit_segments),
    )


def _plan_covariates(
    spec: ExperimentSpec, metrics: list[PlannedMetric]
) -> tuple[PlannedCovariate, ...]:
    """The plan's named covariates, checked against the experiment's metrics (422 on a
    covariate read from, or adjusting, a metric it does not have or cannot adjust)."""
    position = {m.key: i for i, m in enumerate(metrics)}
    adjustable = [i for i, m in enumerate(metrics) if m.definition.kind in ADJUSTABLE]
    problems: list[tuple[str, str]] = []
    names: set[str] = set()
    out = []
    for index, covariate in enumerate(spec.plan.covariates):
        where = f"plan.covariates[{index}]"
        if covariate.name in names:
            problems.append((where, f"repeats the name {covariate.name!r}"))
        names.add(covariate.name)
        source_metric = None
        if covariate.metric is not None:
            if covariate.metric not in position:
                problems.append((where, f"metric {covariate.metric!r} is not the experiment's"))
                continue
            source_metric = metrics[position[covariate.metric]].definition
            if source_metric.source == "units":
                problems.append((where, f"metric {covariate.metric!r} has no pre-period (units)"))
                continue
            if source_metric.kind not in ADJUSTABLE:
                problems.append((where, f"metric {covariate.metric!r} is not binary, count or sum"))
                continue
        chosen = adjustable
        if covariate.metrics:
            wrong = [k for k in covariate.metrics if k not in position]
            wrong += [
                k
                for k in covariate.metrics
                if k in position and metrics[position[k]].definition.kind not in ADJUSTABLE
            ]
            if wrong:
                problems.append((where, f"cannot adjust {', '.join(wrong)}"))
                continue
            chosen = sorted({position[k] for k in covariate.metrics})
        source = CovariateSource(
            attribute=covariate.attribute,
            metric=source_metric,
            days=covariate.days,
            capping=covariate.capping,
            column=covariate.column,
        )
        out.append(PlannedCovariate(covariate, source, tuple(chosen)))
    if problems:
        summary = "; ".join(f"{where}: {problem}" for where, problem in problems)
        raise ValidationError(
            f"experiment {spec.key!r} cannot be analysed: {summary}",
            details=[{"loc": [where], "msg": problem} for where, problem in problems],
        )
    return tuple(out)

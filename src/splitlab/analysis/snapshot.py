"""The analysis snapshot as typed, frozen models — the one form that the API, the CLI, the
readouts and the decision and dashboard packages read.

``Snapshot.to_json()`` gives the JSON form that is stored (``snapshots.payload``) and served
(``/api/experiments/{key}/results``); ``Snapshot.from_json()`` reads it back.  The README
("The snapshot") documents the shape.

A field with a default is *absent* from the JSON unless it was set, never ``null`` for "does
not apply": ``control_mean_adjusted`` appears only on CUPED metrics, ``chance_to_win`` only
with the Bayesian engine, ``power`` only on overall results, ``daily`` only when asked for.
A field that applies but has no finite value (a NaN p-value, an empty arm) is ``null``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from splitlab.domain import Engine, ThresholdScale

Timestamp = Annotated[
    datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")
]
"""An aware datetime, written as Python's ``isoformat()`` (``…+00:00``) as it always was."""


class Severity(StrEnum):
    """How much a health check matters: ``info`` when it passes."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class CheckName(StrEnum):
    """The health checks, in the order a snapshot lists them (see ``analysis.health``)."""

    SRM = "srm"
    SRM_DAILY = "srm_daily"
    SRM_SEGMENT = "srm_segment"
    MULTIPLE_EXPOSURE = "multiple_exposure"
    SAMPLE_SIZE = "sample_size"
    ALLOCATION_DRIFT = "allocation_drift"
    NO_DATA = "no_data"
    NULL_RATE = "null_rate"
    MATURITY = "maturity"
    PRE_PERIOD_IMBALANCE = "pre_period_imbalance"
    NOVELTY = "novelty"
    GUARDRAIL = "guardrail"
    UNDERPOWERED = "underpowered"
    BAYESIAN_HORIZON = "bayesian_horizon"


class SnapshotModel(BaseModel):
    """Frozen, strict about unknown keys, documented from attribute docstrings; fields with a
    default are left out of the JSON unless set (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
    LEADING_KEYS: ClassVar[tuple[str, ...]] = ()
    """Keys written first (inherited fields otherwise come before a subclass's own)."""

    @model_serializer(mode="wrap")
    def _omit_unset_optionals(self, handler: SerializerFunctionWrapHandler):
        # no return annotation: with one, the JSON schema (and OpenAPI) would show its type
        # instead of the model's fields
        data = handler(self)
        fields = type(self).model_fields
        kept = {
            name: value
            for name, value in data.items()
            if name in self.model_fields_set or fields[name].is_required()
        }
        if not self.LEADING_KEYS:
            return kept
        return {name: kept[name] for name in self.LEADING_KEYS} | kept

    def to_json(self) -> dict[str, Any]:
        """The JSON form: plain dicts, lists, strings and numbers."""
        return self.model_dump(mode="json")


class Segment(SnapshotModel):
    """One value of a pre-registered segment (``"other"`` groups the rarer values)."""

    name: str
    """The segment's property name (``plan.segments``)."""
    value: str
    """The property's value, as text."""


class Comparison(SnapshotModel):
    """One treatment against control on one metric: arm sizes and means, effects, test."""

    metric: str
    """The metric's key."""
    variant: str
    """The treatment variant's key (compared with the control)."""
    engine: Engine
    """The plan's engine; sequential results carry always-valid CIs and p-values."""
    control_n: float | None
    """Units in the control arm (with a value, for quantile metrics)."""
    treatment_n: float | None
    """Units in the treatment arm."""
    control_mean: float | None
    """The control arm's raw mean (for CUPED too: the per-unit metric averaged over the arm;
    ratio metrics Σnumerator/Σdenominator; quantile metrics the quantile)."""
    treatment_mean: float | None
    """The treatment arm's raw mean."""
    abs_effect: float | None
    """Treatment − control (of the adjusted means with CUPED)."""
    abs_ci_low: float | None
    """Lower bound of the absolute effect's CI."""
    abs_ci_high: float | None
    """Upper bound of the absolute effect's CI."""
    rel_effect: float | None
    """Treatment / control − 1."""
    rel_ci_low: float | None
    """Lower bound of the relative effect's CI (by ``plan.relative_ci`` for fixed-horizon
    results: delta, fieller or log)."""
    rel_ci_high: float | None
    """Upper bound of the relative effect's CI."""
    statistic: float | None
    """z or t statistic."""
    p_value: float | None
    """Two-sided p-value (always valid with the sequential engine)."""
    df: float | None
    """Degrees of freedom of the t reference; null for z tests."""
    reason: str
    """``""`` when the comparison is valid, else why its numbers are null (``n_below_2``,
    ``zero_variance``, ``zero_control_mean``, … — ``splitlab.stats.REASONS``)."""
    control_mean_adjusted: float | None = None
    """CUPED only: the control mean adjusted for the pre-period covariate (effects, CIs and
    p-values compare the adjusted means)."""
    treatment_mean_adjusted: float | None = None
    """CUPED only: the treatment mean adjusted for the pre-period covariate."""
    variance_reduction: float | None = None
    """CUPED only: 1 − Var(adjusted effect) / Var(raw effect)."""
    covariates: tuple[str, ...] | None = None
    """Regression adjustment (``plan.covariates``) only: the covariates adjusting this metric,
    in order — ``pre:<metric>`` for its own pre-period, then the named ones.  The effect is the
    treatment coefficient of an OLS fit on them (classical SE, t with n − 2 − k df), and
    ``variance_reduction`` compares its variance with the unadjusted Welch difference's."""
    chance_to_win: float | None = None
    """Bayesian engine only: P(treatment better than control), by the metric's direction."""
    risk_control: float | None = None
    """Bayesian engine only: expected loss of choosing control."""
    risk_treatment: float | None = None
    """Bayesian engine only: expected loss of choosing the treatment."""
    credible_low: float | None = None
    """Bayesian engine only: lower bound of the relative effect's credible interval."""
    credible_high: float | None = None
    """Bayesian engine only: upper bound of the relative effect's credible interval."""

    @property
    def cuped(self) -> bool:
        """Whether the effects compare CUPED-adjusted means."""
        return "control_mean_adjusted" in self.model_fields_set


class ResultRow(Comparison):
    """A comparison overall (``segment`` null) or within one segment value."""

    LEADING_KEYS = ("metric", "variant", "segment")

    segment: Segment | None
    """Null for the whole experiment, else the segment value this row is about."""
    p_value_adjusted: float | None = None
    """Not with the Bayesian engine: the p-value corrected across metrics × treatments
    (``plan.correction``)."""
    p_value_adjusted_cells: float | None = None
    """Segment rows only, not with the Bayesian engine: the p-value corrected across the cells
    of its segment (every value of the attribute, or of the crossed pair) for this metric and
    treatment (``plan.correction``)."""
    power: float | None = None
    """Overall rows only: achieved power against the plan's MDE (null without an MDE)."""
    mde: float | None = None
    """Overall rows only: the relative effect detectable now at the plan's power."""
    n_required: float | None = None
    """Overall rows only: control units the plan's MDE needs (null without an MDE)."""
    days_remaining: int | None = None
    """Overall rows only: days until ``n_required`` at the rate so far."""
    margin: float | None = None
    """Overall rows of a guardrail with a margin only: the non-inferiority margin, on
    ``margin_scale`` (compare it with ``rel_*`` when relative, ``abs_*`` when absolute)."""
    margin_scale: ThresholdScale | None = None
    """With ``margin``: ``relative`` (a fraction of the control mean) or ``absolute`` (the
    metric's units)."""
    min_lift: float | None = None
    """Overall rows of a metric with a minimum practical lift only (``plan.min_lift`` /
    ``plan.min_lifts``): that lift, on ``min_lift_scale``."""
    min_lift_scale: ThresholdScale | None = None
    """With ``min_lift``: ``relative`` or ``absolute``, as ``margin_scale``."""


class DailyPoint(Comparison):
    """A comparison on the units first exposed on or before ``day`` (cumulative)."""

    day: date
    """The UTC day."""


class ExposureDayPoint(Comparison):
    """A comparison of the metric measured on one whole day since each unit's first exposure
    (day 0 is the first 24 hours), over the units whose day is complete by ``as_of``: the
    effect among units exposed that long, the novelty view.  Always fixed-horizon (``engine``
    frequentist, the metric's own test without CUPED or covariates) whatever the plan's engine;
    the metric's attribution window and capping do not apply (each day is its own window)."""

    LEADING_KEYS = ("metric", "variant", "days_since_exposure")

    days_since_exposure: int
    """Whole days since the unit's first exposure (its first trigger, with a trigger)."""


class ExposureDayTrend(SnapshotModel):
    """Does the effect of a treatment change with days since exposure?  The weighted trend of
    the :class:`ExposureDayPoint` relative effects (weights 1/variance, as the novelty check
    fits across exposure cohorts), judged by the same threshold."""

    metric: str
    """The metric's key."""
    variant: str
    """The treatment variant's key."""
    slope: float | None
    """Change of the relative effect per day since exposure (null with too few days)."""
    p_value: float | None
    """Two-sided p-value of the slope."""
    days: int
    """Days with a relative effect and a variance (the points fitted)."""
    shape: Literal["fading", "growing", "steady", "too_few_days"]
    """``fading``: the effect moves towards zero as exposure ages (a novelty effect);
    ``growing``: it moves away from zero (users adapt, primacy); ``steady``: no trend at the
    novelty check's threshold; ``too_few_days``: fewer days than that check needs."""


class HealthCheck(SnapshotModel):
    """Can the results be trusted?  One finding of one check."""

    check: CheckName
    """Which check."""
    severity: Severity
    """``info`` when it passes, ``warning`` or ``critical`` otherwise."""
    value: float | None
    """The number the check judged (a p-value, a rate, a count…); null when there was none."""
    message: str
    """What was found and what to do, for people."""
    metric: str | None = None
    """Present when the check is about one metric."""
    variant: str | None = None
    """Present when the check is about one variant."""
    pending: bool = False
    """``info`` that is not a pass: the check cannot pass yet (no minimum detectable effect to
    judge power by, too little data, power still short of the plan within the planned
    duration).  Present only when true."""
    fading: bool | None = None
    """Novelty warnings only: true when later exposure cohorts show the larger effect (the
    effect fades with time since exposure, a novelty effect), false when earlier cohorts do
    (wearing off over calendar time, or growing as users adapt)."""


class OmnibusTest(SnapshotModel):
    """A/B/n only: one test across all variants of a metric, overall."""

    metric: str
    """The metric's key."""
    test: Literal["chi2", "anova"]
    """χ² for binary metrics, one-way ANOVA for counts and sums."""
    statistic: float | None
    """χ² or F."""
    p_value: float | None
    """The test's p-value."""
    df: float | None
    """Degrees of freedom (of the numerator, for F)."""
    df_denominator: float | None
    """ANOVA only: degrees of freedom of the denominator."""
    reason: str
    """``""`` when valid, else why the numbers are null."""


class HeterogeneityTest(SnapshotModel):
    """Is the effect of a treatment on a metric different across the cells of a segment?"""

    metric: str
    """The metric's key."""
    variant: str
    """The treatment variant's key."""
    segment: str
    """The segment's name (an attribute, or ``a × b`` for a crossed segment)."""
    test: Literal["cochran_q", "interaction_z"]
    """Cochran's Q across the cells' absolute effects (fixed-horizon), or with two cells the
    interaction z-test (z² = Q, the same p-value)."""
    cells: int
    """Cells with an effect and a variance (the others are left out)."""
    statistic: float | None
    """Q, or z for the interaction test."""
    df: float | None
    """Degrees of freedom of Q (cells − 1)."""
    p_value: float | None
    """P(χ²_df > Q): small when the effect differs across cells."""
    i_squared: float | None
    """I² = max(0, (Q − df)/Q): the share of the spread across cells beyond chance."""
    reason: str
    """``""`` when valid, else why the numbers are null."""


class VariantUnits(SnapshotModel):
    """How many units a variant has."""

    variant: str
    """The variant's key."""
    weight: float
    """Its configured traffic weight."""
    n: int
    """Units analysed (first exposed to this variant only)."""
    excluded: int
    """Units excluded because they were also exposed to another variant."""


class PopulationUnits(SnapshotModel):
    """One variant's units in the assigned and in the triggered population."""

    variant: str
    assigned: int
    """Units analysed without the trigger (every exposed unit, from its exposure)."""
    triggered: int
    """Of those, units that reached the trigger (the population of ``results``)."""


class Population(SnapshotModel):
    """With ``plan.trigger`` only: the snapshot's results, units, daily series and health
    checks are the triggered population's; this keeps the assigned population beside it."""

    kind: str = "triggered"
    """The population of the snapshot's results (always "triggered" when present)."""
    trigger: dict[str, Any]
    """The activation condition: event, filter, within_hours."""
    units: tuple[PopulationUnits, ...]
    """Per variant, control first."""
    srm_p_triggered: float | None
    """Sample-ratio test on the triggered units against the weights."""
    srm_p_assigned: float | None
    """The same test on the assigned units."""
    assigned_results: tuple[ResultRow, ...]
    """Overall rows of the assigned population (every exposed unit counted from its
    exposure): ``results`` as they would be without the trigger, for comparison."""


class Breakdown(SnapshotModel):
    """An ad-hoc breakdown (``?breakdown=``): segments chosen after the fact."""

    dimensions: tuple[str, ...]
    """The exposure attributes broken down by (two add their crossed cells)."""
    exploratory: bool = True
    """Always true: not pre-registered, so not a finding."""
    note: str
    """How to read it, for people."""


class DataWatermark(SnapshotModel):
    """The warehouse data the snapshot was computed from (its cache key)."""

    key: str
    """The cache key: counts and the last ingestion time."""
    exposures: int
    """Exposure rows in the warehouse."""
    events: int
    """Event rows in the warehouse."""
    conflicts: int
    """Units recorded in more than one variant."""
    last_ingested_at: Timestamp | None
    """When data last arrived (null for an empty warehouse)."""


class Snapshot(SnapshotModel):
    """The result of one analysis of one experiment."""

    experiment: str
    """The experiment's key."""
    engine: Engine
    """The plan's engine."""
    settings_hash: str
    """Hash of ``settings`` (with the data watermark, the cache key)."""
    settings: dict[str, Any]
    """Everything in the plan that changes the numbers: ``analysis_version``, variants and
    weights, metrics with their role, margin and definition, engine, alpha, power, mde,
    correction, segments, max_days, start_at, top_n, relative_ci; and, only when not their
    default, binary_test."""
    watermark: DataWatermark
    """The data analysed."""
    as_of: Timestamp
    """Metric windows still open at this time count as immature."""
    created_at: Timestamp
    """When the analysis ran."""
    duration_ms: float
    """How long it took."""
    timings_ms: dict[str, float]
    """Time per warehouse query step."""
    units: tuple[VariantUnits, ...]
    """Per variant, control first."""
    days: tuple[date, ...]
    """The UTC days with exposures, first to last."""
    results: tuple[ResultRow, ...]
    """Per metric × segment (overall first) × treatment, in the plan's metric order."""
    daily: tuple[DailyPoint, ...] = ()
    """Cumulative results per day (not for quantile metrics); always stored, served only
    when asked for (``?daily=true``)."""
    exposure_days: tuple[ExposureDayPoint, ...] = ()
    """With the daily series, for binary, count and sum metrics only: per metric × treatment ×
    whole day since exposure (0 …, at most 28 or ``max_days``), the effect on that day alone;
    always stored, served only when asked for (``?daily=true``)."""
    exposure_day_trends: tuple[ExposureDayTrend, ...] = ()
    """Beside ``exposure_days``, per metric × treatment: whether the effect fades, grows or
    holds with days since exposure; served with it."""
    omnibus: tuple[OmnibusTest, ...]
    """A/B/n only: tests across all variants."""
    heterogeneity: tuple[HeterogeneityTest, ...] = ()
    """With segments only: per segment × metric × treatment, whether the effect differs
    across the segment's cells."""
    health: tuple[HealthCheck, ...]
    """Every health check, in a stable order."""
    population: Population | None = None
    """With a trigger only: the assigned population beside the triggered one."""
    breakdown: Breakdown | None = None
    """Ad-hoc breakdowns only (never stored): which attributes, labelled exploratory."""
    snapshot_id: int | None = None
    """Served snapshots only: the stored snapshot's id."""
    cached: bool | None = None
    """Served snapshots only: whether it was reused rather than computed for this request."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        """Read the JSON form (as stored or served)."""
        return cls.model_validate(data)

    def served(self, *, snapshot_id: int, cached: bool) -> Snapshot:
        """This snapshot as served: with its stored id and whether it was reused."""
        return self.model_copy(update={"snapshot_id": snapshot_id, "cached": cached})

    def view(self, *, segment: str | None = None, daily: bool = False) -> Snapshot:
        """The overall results (or those of segment ``segment``), with ``daily`` (and the
        days-since-exposure view) only when asked for."""
        fields = {name: getattr(self, name) for name in self.model_fields_set}
        fields["results"] = tuple(
            r for r in self.results if (r.segment.name == segment if r.segment else segment is None)
        )
        if not daily:
            for name in ("daily", "exposure_days", "exposure_day_trends"):
                fields.pop(name, None)
        return Snapshot(**fields)

    def overall(self) -> Iterator[ResultRow]:
        """The results for the whole experiment (no segment)."""
        return (r for r in self.results if r.segment is None)

    def result(self, metric: str, variant: str) -> ResultRow:
        """The overall result of ``metric`` for treatment ``variant`` (KeyError if none)."""
        for row in self.overall():
            if row.metric == metric and row.variant == variant:
                return row
        raise KeyError((metric, variant))

    def checks(self, check: CheckName | str) -> list[HealthCheck]:
        """The findings of one health check."""
        return [c for c in self.health if c.check == check]

"""Experiment and metric definitions: the contract shared by the API, YAML files and the store.

Pydantic models validate shape and ranges; the lifecycle guards in ``lifecycle.py`` check
completeness when an experiment leaves draft, so an unfinished draft can still be saved.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from splitlab.domain.enums import (
    BinaryTest,
    Correction,
    Direction,
    Engine,
    ExperimentType,
    MetricKind,
    RelativeInterval,
    ThresholdScale,
)
from splitlab.domain.factorial import factorial_design, is_factorial
from splitlab.domain.limits import (
    MAX_METRICS,
    MAX_SEGMENTS,
    MAX_TAGS,
    MAX_VARIANTS,
    MAX_WINDOW_HOURS,
    FilterDocument,
    JsonDocument,
    LongText,
    Moment,
    Name,
    PropertyName,
    ShortText,
    max_items,
)

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,99}$"
Slug = Annotated[
    str, Field(pattern=SLUG_PATTERN, description="lower-case letters, digits, - and _")
]
WEIGHT_TOLERANCE = 1e-6


class Strict(BaseModel):
    """Base for contract models: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, allow_inf_nan=False)


class Variant(Strict):
    key: Slug
    name: Name = ""
    weight: float = Field(ge=0, le=1)
    is_control: bool = False
    payload: Annotated[
        dict[str, Any] | list[Any] | str | float | bool | None,
        JsonDocument,
        Field(description="JSON handed to the client; at most 32 levels and 64 KiB"),
    ] = None


class Namespace(Strict):
    """A slice [start, end) of a namespace; experiments in disjoint slices never share units."""

    id: Slug
    start: float = Field(ge=0, le=1)
    end: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Namespace:
        if self.end <= self.start:
            raise ValueError("namespace end must be greater than start")
        return self


THRESHOLD_FORMS = (
    'a number (a fraction of the control mean, as before: 0.05), "5%", '
    "{absolute: 0.0043} or {relative: 0.05}"
)


_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def plain_float(text: str) -> float:
    """A number a person typed, in ASCII digits (``5``, ``-0.5``, ``.5``, ``1e-3``); a
    ValueError for anything else — ``float()`` alone would also read ``"５"``, ``"5_0"`` (as
    50), ``"inf"`` or ``"nan"``."""
    if not _PLAIN_NUMBER.fullmatch(text.strip()):
        raise ValueError(f"not a plain number: {text[:40]!r}")
    return float(text)


def parse_threshold(value: Any) -> Any:
    """A threshold as written → ``{"value": v, "scale": s}`` (anything else unchanged, for the
    model's own validation to reject).

    A bare number is relative (a fraction of the control mean: what a margin always meant);
    ``"5%"`` is relative 0.05; ``{absolute: 0.0043}`` is in the metric's units;
    ``{relative: 0.05}`` and ``{value: …, scale: …}`` are explicit."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return {"value": value, "scale": ThresholdScale.RELATIVE.value}
    if isinstance(value, str):
        text = value.strip()
        try:  # ASCII digits only: float() alone would also read "５%" or "5_0%" (as 50%)
            if not text.endswith("%"):
                raise ValueError(text)
            percent = plain_float(text[:-1])
        except ValueError:
            raise ValueError(f"a threshold is {THRESHOLD_FORMS}, not {value[:40]!r}") from None
        return {"value": percent / 100.0, "scale": ThresholdScale.RELATIVE.value}
    if isinstance(value, dict) and len(value) == 1:
        ((scale, number),) = value.items()
        if scale in ("absolute", "relative"):
            return {"value": number, "scale": scale}
    return value


class Threshold(Strict):
    """A non-negative threshold on a scale: a guardrail margin or a minimum practical lift.
    Written as a number (relative), ``"5%"``, ``{absolute: 0.0043}`` or ``{relative: 0.05}``."""

    value: float = Field(ge=0)
    scale: ThresholdScale = ThresholdScale.RELATIVE

    @model_validator(mode="before")
    @classmethod
    def _written(cls, value: Any) -> Any:
        return parse_threshold(value)


def written_margin(data: Any, info: ValidationInfo) -> Any:
    """A model's input with its ``margin`` written in any :class:`Threshold` form → the number
    and its ``margin_scale`` (a bare number is left as it is: relative unless ``margin_scale``
    says otherwise).  An absolute ``margin_scale`` without a margin is refused on input: it
    would be ignored (definitions already stored still read)."""
    if not isinstance(data, dict):
        return data
    if isinstance(data.get("margin"), bool):
        raise ValueError(f"margin is {THRESHOLD_FORMS}, not a boolean")
    if data.get("margin") is None:
        stored = info.context and info.context.get("stored")
        if data.get("margin_scale") == ThresholdScale.ABSOLUTE.value and not stored:
            raise ValueError(
                "margin_scale absolute needs a margin: write margin: {absolute: …}, or leave "
                "margin_scale out"
            )
        return data
    if isinstance(data.get("margin"), int | float):
        return data
    parsed = parse_threshold(data["margin"])
    if not isinstance(parsed, dict) or set(parsed) != {"value", "scale"}:
        raise ValueError(f"margin is {THRESHOLD_FORMS}")
    if not isinstance(parsed["value"], int | float) or isinstance(parsed["value"], bool):
        raise ValueError(f"margin is {THRESHOLD_FORMS}")
    if parsed["value"] < 0:
        raise ValueError("margin must be non-negative")
    stated = data.get("margin_scale")
    if stated is not None and stated != parsed["scale"]:
        raise ValueError(f"margin is {parsed['scale']} but margin_scale says {stated}")
    return data | {"margin": parsed["value"], "margin_scale": parsed["scale"]}


def _is_relative(scale: ThresholdScale) -> bool:
    """Whether a ``margin_scale`` is left out of the JSON: relative, as before it existed (so
    stored definitions, settings hashes and fixtures stay as they were)."""
    return scale is ThresholdScale.RELATIVE


class GuardrailRef(Strict):
    """A guardrail metric with an optional per-experiment margin (overrides the metric's).

    ``margin`` may be written as any :class:`Threshold` form; it is kept as the number and its
    ``margin_scale`` (``relative`` unless written ``{absolute: …}``).  The JSON form leaves
    ``margin_scale`` out when it is relative, as before the option existed."""

    key: Slug
    margin: float | None = Field(
        default=None, description=f"non-inferiority margin: {THRESHOLD_FORMS}"
    )
    margin_scale: ThresholdScale = Field(default=ThresholdScale.RELATIVE, exclude_if=_is_relative)

    @model_validator(mode="before")
    @classmethod
    def _margin_forms(cls, data: Any, info: ValidationInfo) -> Any:
        return written_margin(data, info)


class MetricsSpec(Strict):
    primary: Slug | None = None
    secondary: Annotated[list[Slug], max_items(MAX_METRICS)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_METRICS}
    )
    guardrails: Annotated[list[GuardrailRef], max_items(MAX_METRICS)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_METRICS}
    )

    @field_validator("guardrails", mode="before")
    @classmethod
    def _plain_keys(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"key": item} if isinstance(item, str) else item for item in value]
        return value

    def all_keys(self) -> list[str]:
        keys = [self.primary] if self.primary else []
        return keys + list(self.secondary) + [g.key for g in self.guardrails]


MAX_COVARIATES = 8
MAX_CROSSED = 4
CrossedPair = Annotated[list[PropertyName], Field(min_length=2, max_length=2)]


class Covariate(Strict):
    """A named covariate for regression adjustment (multivariate CUPED): a numeric exposure
    attribute (``attribute``, e.g. ``historical_revenue_28d``) or another metric's value over
    the ``days`` before exposure (``metric``), or a column of the unit table (``column``, e.g.
    ``historical_revenue_28d`` from ``splitlab import units``); missing or non-numeric values
    count as 0.
    ``capping`` caps it by its own rule; ``metrics`` names the metrics it adjusts (default:
    every binary, count and sum metric of the experiment)."""

    name: Slug
    attribute: PropertyName | None = None
    metric: Slug | None = None
    column: PropertyName | None = None
    days: int = Field(default=14, ge=1, le=365)
    capping: Capping | None = None
    metrics: Annotated[list[Slug], max_items(MAX_METRICS)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_METRICS}
    )

    @model_validator(mode="after")
    def _one_source(self) -> Covariate:
        if sum(x is not None for x in (self.attribute, self.metric, self.column)) != 1:
            raise ValueError("a covariate has exactly one of attribute, metric or column")
        return self


class Trigger(Strict):
    """An activation condition: only units with a matching ``event`` at or after their
    exposure (within ``within_hours`` of it, when set) are analysed, each from its first such
    event (metric windows and pre-periods start there). GrowthBook's activation metric."""

    event: Name = Field(min_length=1)
    filter: Annotated[dict[str, Any], FilterDocument] = Field(
        default_factory=dict,
        description="{property: value or [values]}: trigger events whose properties match",
    )
    within_hours: float | None = Field(default=None, gt=0, le=MAX_WINDOW_HOURS)


class Plan(Strict):
    engine: Engine = Engine.FREQUENTIST
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    mde: float | None = Field(default=None, gt=0, description="relative minimum detectable effect")
    correction: Correction = Correction.HOLM
    segments: Annotated[list[PropertyName], max_items(MAX_SEGMENTS)] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_SEGMENTS},
        description="exposure attributes to break results down by",
    )
    unit_segments: Annotated[list[PropertyName], max_items(MAX_SEGMENTS)] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_SEGMENTS},
        description="text attributes of the unit table (splitlab import units) to break "
        "results down by, as segments are exposure attributes",
    )
    crossed: Annotated[list[CrossedPair], max_items(MAX_CROSSED)] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_CROSSED},
        description="pairs of exposure attributes to break results down by together "
        "(platform × plan), with the correction across cells and a heterogeneity test",
    )
    max_days: int | None = Field(default=None, ge=1, le=3650)
    relative_ci: RelativeInterval = Field(
        default=RelativeInterval.DELTA,
        description="relative-effect CI: delta (default), fieller or log; fieller covers "
        "better on heavy-tailed metrics such as revenue (docs/validity.md)",
    )
    min_lift: Threshold | None = Field(
        default=None,
        description="minimum practical lift of every primary and secondary metric without its "
        f"own (min_lifts): {THRESHOLD_FORMS}",
    )
    min_lifts: Annotated[dict[Slug, Threshold], max_items(MAX_METRICS)] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": MAX_METRICS},
        description="per-metric minimum practical lift, by metric key",
    )
    covariates: Annotated[list[Covariate], max_items(MAX_COVARIATES)] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_COVARIATES},
        description="named covariates adjusting binary, count and sum metrics by regression "
        "(with a metric's own cuped_days pre-period, when it has one)",
    )

    @field_validator("crossed")
    @classmethod
    def _two_dimensions(cls, pairs: list[list[str]]) -> list[list[str]]:
        for pair in pairs:
            if pair[0] == pair[1]:
                raise ValueError(f"a crossed segment needs two different attributes: {pair}")
        return pairs

    event_quantiles: Annotated[list[Slug], max_items(MAX_METRICS)] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_METRICS},
        description="quantile metrics taken over all events (p95 of all requests) with the "
        "clustered delta-method SE, instead of over each unit's mean value",
    )
    trigger: Trigger | None = Field(
        default=None,
        description="activation condition: analyse only units that reached this event, from "
        "that moment (the assigned population's overall results come alongside)",
    )
    binary_test: BinaryTest = Field(
        default=BinaryTest.Z,
        description="binary metrics: two-proportion z-test (z, default) or Welch's t-test on "
        "the 0/1 values (welch)",
    )


MAX_COST = 1e12


class Costs(Strict):
    """What an experiment costs, for the programme's cost-benefit view (optional, in the
    team's currency): the engineering cost of building it and the cost of running it per day
    (infrastructure, model calls, traffic withheld)."""

    engineering: float | None = Field(default=None, ge=0, le=MAX_COST)
    run_per_day: float | None = Field(default=None, ge=0, le=MAX_COST)
    currency: ShortText = ""


class ExperimentSpec(Strict):
    """The editable configuration of an experiment (everything but status and timestamps)."""

    key: Slug
    name: Name = ""
    hypothesis: LongText = ""
    predicted_outcome: LongText = ""
    predicted_probability: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="the team's probability, stated before the start, that the primary metric "
        "wins (significantly, in its good direction); scored by the hypothesis tracker",
    )
    costs: Costs | None = None
    type: ExperimentType = ExperimentType.FEATURE
    team: ShortText = ""
    owner: ShortText = ""
    tags: Annotated[list[ShortText], max_items(MAX_TAGS)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_TAGS}
    )
    variants: Annotated[list[Variant], max_items(MAX_VARIANTS)] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_VARIANTS}
    )
    coverage: float = Field(default=1.0, ge=0, le=1)
    seed: ShortText | None = None
    hash_version: int = Field(default=2, ge=1, le=2)
    namespace: Namespace | None = None
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    plan: Plan = Field(default_factory=Plan)
    start_at: Moment | None = None
    end_at: Moment | None = None

    @field_validator("variants")
    @classmethod
    def _unique_variant_keys(cls, variants: list[Variant]) -> list[Variant]:
        keys = [v.key for v in variants]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            raise ValueError(f"variant keys must be unique; repeated: {', '.join(duplicated)}")
        return variants

    @model_validator(mode="after")
    def _defaults(self, info: ValidationInfo) -> ExperimentSpec:
        if not (info.context and info.context.get("stored")):
            _check_schedule(self.start_at, self.end_at)
        payloads = [v.payload for v in self.variants]
        if is_factorial(payloads):  # variants setting several factors: a full 2^k design
            factorial_design([(v.key, v.payload, v.is_control) for v in self.variants])
        if self.seed is None:
            self.seed = self.key
        if not self.name:
            self.name = self.key
        for variant in self.variants:
            if not variant.name:
                variant.name = variant.key
        return self


class ExperimentPatch(Strict):
    """A partial edit: only the fields present are changed."""

    name: Name | None = None
    hypothesis: LongText | None = None
    predicted_outcome: LongText | None = None
    predicted_probability: float | None = Field(default=None, ge=0, le=1)
    costs: Costs | None = None
    type: ExperimentType | None = None
    team: ShortText | None = None
    owner: ShortText | None = None
    tags: Annotated[list[ShortText], max_items(MAX_TAGS)] | None = Field(
        default=None, json_schema_extra={"maxItems": MAX_TAGS}
    )
    variants: Annotated[list[Variant], max_items(MAX_VARIANTS)] | None = Field(
        default=None, json_schema_extra={"maxItems": MAX_VARIANTS}
    )
    coverage: float | None = Field(default=None, ge=0, le=1)
    seed: ShortText | None = None
    hash_version: int | None = Field(default=None, ge=1, le=2)
    namespace: Namespace | None = None
    metrics: MetricsSpec | None = None
    plan: Plan | None = None
    start_at: Moment | None = None
    end_at: Moment | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ExperimentPatch:
        _check_schedule(self.start_at, self.end_at)
        return self


def _check_schedule(start_at: Any, end_at: Any) -> None:
    if start_at is not None and end_at is not None:
        start = start_at if start_at.tzinfo else start_at.replace(tzinfo=UTC)
        end = end_at if end_at.tzinfo else end_at.replace(tzinfo=UTC)
        if end <= start:
            raise ValueError("end_at must be later than start_at")


class Capping(Strict):
    """Winsorise per-unit values: at an absolute value, or at a percentile of all units."""

    type: str = Field(pattern="^(absolute|percentile)$")
    value: float = Field(gt=0)

    @model_validator(mode="after")
    def _percentile_range(self) -> Capping:
        if self.type == "percentile" and not 0 < self.value < 1:
            raise ValueError("a percentile cap is a fraction between 0 and 1, e.g. 0.99")
        return self


UNIT_TABLE_KINDS = (MetricKind.BINARY, MetricKind.COUNT, MetricKind.SUM, MetricKind.QUANTILE)


def _check_source(metric: MetricDefinition) -> None:
    """An events metric names its event; a units metric names its column and has no event
    fields, window or pre-period (a unit table has no timestamps)."""
    if metric.source == "events":
        if not metric.event:
            raise ValueError("an events metric needs event")
        if metric.column is not None:
            raise ValueError("column is only for source units")
        return
    if metric.column is None:
        raise ValueError("a units metric needs column (the unit table's column)")
    if metric.kind not in UNIT_TABLE_KINDS:
        raise ValueError("a units metric is binary, count, sum or quantile")
    timed = {
        "event": metric.event,
        "filter": metric.filter,
        "value_field": metric.value_field,
        "denominator_event": metric.denominator_event,
        "window_start_hours": metric.window_start_hours,
        "window_hours": metric.window_hours,
        "cuped_days": metric.cuped_days,
    }
    wrong = [name for name, value in timed.items() if value]
    if wrong:
        raise ValueError(f"a units metric has no {', '.join(wrong)} (the table has no events)")


class MetricDefinition(Strict):
    key: Slug
    name: Name = ""
    description: LongText = ""
    kind: MetricKind
    source: str = Field(
        default="events",
        pattern="^(events|units)$",
        description="events (default) or units: the per-unit value is the column of the unit "
        "table (splitlab import units), joined to exposures by unit id",
    )
    event: Name = Field(
        default="", description="the event counted (required unless source is units)"
    )
    column: PropertyName | None = Field(
        default=None, description="source units: the unit table's column holding the value"
    )
    filter: Annotated[dict[str, Any], FilterDocument] = Field(
        default_factory=dict,
        description="{property: value or [values]}: events whose properties match all of them",
    )
    value_field: PropertyName | None = Field(
        default=None, description="property holding the value; default: the event's value"
    )
    denominator_event: Name | None = None
    quantile: float | None = Field(default=None, gt=0, lt=1)
    window_start_hours: float = Field(default=0, ge=0, le=MAX_WINDOW_HOURS)
    window_hours: float | None = Field(default=None, gt=0, le=MAX_WINDOW_HOURS)
    capping: Capping | None = None
    direction: Direction = Direction.INCREASE
    cuped_days: int = Field(default=0, ge=0, le=365)
    margin: float | None = Field(
        default=None,
        ge=0,
        description="guardrail non-inferiority margin, for experiments that do not set their "
        f"own: {THRESHOLD_FORMS}",
    )
    margin_scale: ThresholdScale = Field(
        default=ThresholdScale.RELATIVE,
        description="the margin's scale: relative (a fraction of the control mean; left out "
        "of the JSON) or absolute (the metric's units); set by the form margin is written in",
        exclude_if=_is_relative,
    )

    @model_validator(mode="before")
    @classmethod
    def _margin_forms(cls, data: Any, info: ValidationInfo) -> Any:
        return written_margin(data, info)

    @field_validator("event")
    @classmethod
    def _events_name_their_event(cls, event: str, info: ValidationInfo) -> str:
        # here rather than in _check_source so that the error names the field (loc "event")
        if not event and info.data.get("source", "events") == "events":
            raise ValueError("an events metric needs event (the event it counts)")
        return event

    @model_validator(mode="after")
    def _kind_fields(self) -> MetricDefinition:
        _check_source(self)
        if self.kind is MetricKind.RATIO and not self.denominator_event:
            raise ValueError("a ratio metric needs denominator_event")
        if self.kind is MetricKind.QUANTILE and self.quantile is None:
            raise ValueError("a quantile metric needs quantile, e.g. 0.95")
        if self.kind is not MetricKind.QUANTILE and self.quantile is not None:
            raise ValueError("quantile is only for quantile metrics")
        if not self.name:
            self.name = self.key
        return self

"""Scenario contracts: YAML files that describe a population, its behaviour and the truth.

A scenario declares who arrives (``units`` over ``days``, with categorical ``attributes``),
what they do (``streams``: one per event name, how often it happens per unit over the unit's
time in the experiment and what value each event carries), how each variant changes that
(``effects``: relative lifts or absolute values, overall or in one segment, optionally
changing with the days since exposure), how the pre-period relates to in-experiment
behaviour (``pre_period.correlation``, for CUPED), and the experiment itself: its
``metrics`` (the same metric contract as ``splitlab apply``) and ``experiment`` (the same
experiment contract, ``key`` defaulting to the scenario's name).

The behavioural model (what ``generator`` draws and ``truth`` integrates):

* every unit has a frailty ``f = exp(h z − h²/2)`` (``z`` standard normal, ``h`` =
  ``heterogeneity``; mean 1) that multiplies its rate of every stream; its pre-period
  frailty uses ``z' = ρ z + √(1−ρ²) ε`` with ``ρ = pre_period.correlation``;
* a stream with ``occurrence: once`` happens at most once per unit, with probability
  ``min(1, rate × lifts × f)``; ``occurrence: poisson`` happens ``Poisson(rate × lifts × f)``
  times; ``rate`` is per unit over its whole time in the experiment (exposure to the end);
* a time ``profile`` on an effect makes its lift ``lift × g(d)`` on day ``d`` since
  exposure (``novelty``: ``g = final + (1 − final) 0.5^(d / half_life_days)``; ``delayed``:
  ``g = 0`` before ``after_days``, 1 from then); a unit's events fall on its days in
  proportion to the rate of each day, so late arrivals see only the first days;
* event values (``value``, and each of ``fields``, sent as event properties) are drawn
  independently per event from their distribution, parameterised by its mean;
* ``concurrent`` (optional) is a second experiment every unit is also in (assigned by its own
  hashing, exposed at the same moment): an effect with ``concurrent: <arm>`` applies only to
  units in that arm, so ``{variant: t, concurrent: b}`` is an interaction between the two.
  The model treats the other experiment's arm as one more attribute (``Scenario.joint``), so
  the truth integrates over it exactly and reports the experiment's effect per arm of the
  other under ``segments.<other key>``.
"""

from __future__ import annotations

import itertools
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from splitlab.domain import ExperimentSpec, MetricDefinition, MetricKind
from splitlab.domain.experiments import WEIGHT_TOLERANCE
from splitlab.errors import NotFoundError, ValidationError, from_pydantic

SCENARIO_PACKAGE = "splitlab.simulate.scenarios"
MAX_CELLS = 200_000
"""Most (attribute combination × arrival day) cells the exact truth integrates over."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Distribution(_Strict):
    """An event value's distribution, parameterised by its mean (so lifts scale the mean).

    ``lognormal``: ``sigma`` of the log; ``gamma``: coefficient of variation ``cv``;
    ``normal``: standard deviation ``sd``; ``beta`` (values in 0–1): ``concentration``
    (α + β); ``constant``: always ``mean``.
    """

    dist: Literal["constant", "normal", "lognormal", "gamma", "beta"] = "constant"
    mean: float = 1.0
    sigma: float = Field(default=1.0, gt=0, le=5)
    cv: float = Field(default=1.0, gt=0, le=20)
    sd: float = Field(default=1.0, ge=0)
    concentration: float = Field(default=10.0, gt=0)
    round: int | None = Field(default=None, ge=0, le=6, description="decimals kept")

    @model_validator(mode="after")
    def _range(self) -> Distribution:
        if self.dist == "beta" and not 0 < self.mean < 1:
            raise ValueError("a beta distribution's mean is between 0 and 1")
        if self.dist in ("lognormal", "gamma") and self.mean <= 0:
            raise ValueError(f"a {self.dist} distribution's mean is positive")
        return self


class Stream(_Strict):
    """One event name: how often a unit sends it and what each event carries."""

    occurrence: Literal["once", "poisson"] = "poisson"
    rate: float = Field(
        ge=0,
        le=1000,
        description="once: probability per unit; poisson: expected events per unit, both over "
        "the unit's whole time in the experiment",
    )
    value: Distribution | None = None
    fields: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], Distribution] = (
        Field(default_factory=dict, description="numeric event properties")
    )

    @model_validator(mode="after")
    def _probability(self) -> Stream:
        if self.occurrence == "once" and self.rate > 1:
            raise ValueError("a 'once' stream's rate is a probability (at most 1)")
        return self


class Profile(_Strict):
    """How an effect changes with the days since a unit's exposure."""

    shape: Literal["novelty", "delayed"]
    half_life_days: float = Field(default=2.0, gt=0)
    final: float = Field(default=0.0, ge=0, le=1, description="novelty: share of the lift kept")
    after_days: int = Field(default=3, ge=0, description="delayed: first day with the effect")


class Effect(_Strict):
    """A variant's true effect on one parameter of one stream, overall or in one segment.

    ``param`` is ``rate``, ``value`` or the name of one of the stream's ``fields``. Give
    ``lift`` (relative: 0.1 = +10%) or ``value`` (the parameter's value for this variant).
    ``variant: null`` changes the baseline of every variant (e.g. mobile converts less).
    """

    variant: str | None
    stream: str
    param: str = "rate"
    lift: float | None = Field(default=None, gt=-1, le=100)
    value: float | None = None
    segment: dict[str, str] = Field(default_factory=dict, max_length=4)
    profile: Profile | None = None
    concurrent: str | None = Field(
        default=None,
        description="only for units in this arm of the scenario's concurrent experiment",
    )

    @model_validator(mode="after")
    def _one_of(self) -> Effect:
        if (self.lift is None) == (self.value is None):
            raise ValueError("give exactly one of lift and value")
        return self


class PrePeriod(_Strict):
    """Behaviour before exposure, for CUPED: the same streams at their baseline rates over
    the longest ``cuped_days`` of the metrics, from a frailty correlated with the unit's
    in-experiment frailty."""

    correlation: float = Field(default=0.7, ge=-1, le=1)
    streams: list[str] = Field(default_factory=list, description="default: CUPED metrics' events")
    rate_factor: float = Field(default=1.0, ge=0, le=100)


class Breakage(_Strict):
    """A broken assignment: after assignment, ``drop_fraction`` of ``variant``'s units are
    lost (never exposed, no events) — a sample ratio mismatch."""

    variant: str
    drop_fraction: float = Field(gt=0, lt=1)


class Arrival(_Strict):
    """How units arrive over the days: ``uniform``; ``decay`` (each day ``rate`` fewer than
    the one before, as when returning users arrive first); or explicit day ``weights``."""

    shape: Literal["uniform", "decay", "weights"] = "uniform"
    rate: float = Field(default=0.15, ge=0, lt=1)
    weights: list[float] = Field(default_factory=list)

    def day_weights(self, days: int) -> list[float]:
        if self.shape == "weights" and self.weights:
            raw = (self.weights * (days // len(self.weights) + 1))[:days]
        elif self.shape == "decay":
            raw = [(1 - self.rate) ** d for d in range(days)]
        else:
            raw = [1.0] * days
        total = sum(raw)
        return [w / total for w in raw]


class Scenario(_Strict):
    """A scenario contract (see the module docstring)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,99}$")]
    description: str = Field(min_length=1, max_length=300)
    seed: int = Field(default=1, ge=0, description="the documented seed of this scenario")
    units: int = Field(default=20_000, ge=10, le=100_000_000)
    days: int = Field(default=14, ge=1, le=120)
    arrival: Arrival = Field(default_factory=Arrival)
    attributes: dict[str, dict[str, float]] = Field(default_factory=dict, max_length=8)
    heterogeneity: float = Field(default=0.5, ge=0, le=3)
    streams: dict[Annotated[str, Field(min_length=1, max_length=100)], Stream] = Field(min_length=1)
    effects: list[Effect] = Field(default_factory=list)
    pre_period: PrePeriod | None = None
    breakage: Breakage | None = None
    metrics: list[MetricDefinition] = Field(min_length=1)
    experiment: dict[str, Any]
    concurrent: dict[str, Any] | None = Field(
        default=None,
        description="a second experiment (same contract as experiment, key required) that "
        "every unit is also assigned to, by its own hashing; effects name its arms with "
        "'concurrent'",
    )
    expect: dict[str, Any] = Field(
        default_factory=dict,
        description="what an analysis should find (for tests and docs): e.g. {srm: critical}",
    )

    def spec(self, key: str | None = None) -> ExperimentSpec:
        """The experiment contract, keyed ``key`` (default: the scenario's name)."""
        return ExperimentSpec.model_validate({**self.experiment, "key": key or self.name})

    def concurrent_spec(self) -> ExperimentSpec | None:
        """The concurrent experiment's contract, if the scenario has one."""
        if self.concurrent is None:
            return None
        return ExperimentSpec.model_validate(self.concurrent)

    def joint(self) -> Scenario:
        """The behavioural model with the concurrent experiment folded in: its arm becomes
        an attribute named by its key (shares = its weights; the generator sets it from the
        assignment, the truth integrates over it) and each effect's ``concurrent`` arm a
        segment condition on that attribute.  Without a concurrent experiment: ``self``."""
        spec = self.concurrent_spec()
        if spec is None:
            return self
        effects = [
            e.model_copy(update={"segment": {**e.segment, spec.key: e.concurrent}})
            if e.concurrent is not None
            else e
            for e in self.effects
        ]
        arms = {v.key: v.weight for v in spec.variants}
        return self.model_copy(
            update={"attributes": {**self.attributes, spec.key: arms}, "effects": effects}
        )

    @property
    def variant_keys(self) -> list[str]:
        return [str(v["key"]) for v in self.experiment.get("variants", [])]

    @property
    def control(self) -> str:
        variants = self.experiment.get("variants", [])
        return next(str(v["key"]) for v in variants if v.get("is_control"))

    @property
    def pre_days(self) -> int:
        return max((m.cuped_days for m in self.metrics), default=0)

    def pre_streams(self) -> list[str]:
        if self.pre_period is None or self.pre_days == 0:
            return []
        if self.pre_period.streams:
            return list(self.pre_period.streams)
        return sorted({m.event for m in self.metrics if m.cuped_days})

    def metric(self, key: str) -> MetricDefinition:
        return next(m for m in self.metrics if m.key == key)

    @property
    def primary(self) -> str:
        return str(self.spec().metrics.primary)


def _cross_check(scenario: Scenario) -> list[dict[str, Any]]:
    """Errors a field-by-field validation cannot see, each naming its field path."""
    errors: list[dict[str, Any]] = []
    try:
        spec = scenario.spec()
    except PydanticValidationError as exc:
        return list(from_pydantic(exc, prefix=("experiment",)).details)
    variants = [v.key for v in spec.variants]
    if len(variants) < 2 or sum(v.is_control for v in spec.variants) != 1:
        errors.append(
            {"loc": ["experiment", "variants"], "msg": "two or more variants, one control"}
        )
    if abs(sum(v.weight for v in spec.variants) - 1) > WEIGHT_TOLERANCE:
        errors.append({"loc": ["experiment", "variants"], "msg": "weights must sum to 1"})
    known = {m.key for m in scenario.metrics}
    for key in spec.metrics.all_keys():
        if key not in known:
            errors.append({"loc": ["experiment", "metrics"], "msg": f"unknown metric {key!r}"})
    if not spec.metrics.primary:
        errors.append({"loc": ["experiment", "metrics", "primary"], "msg": "is required"})
    for name, shares in scenario.attributes.items():
        if not shares or any(p < 0 for p in shares.values()) or sum(shares.values()) <= 0:
            errors.append({"loc": ["attributes", name], "msg": "positive shares, at least one"})
    for i, metric in enumerate(scenario.metrics):
        events = [metric.event] + ([metric.denominator_event] if metric.denominator_event else [])
        for event in events:
            if event not in scenario.streams:
                errors.append({"loc": ["metrics", i, "event"], "msg": f"no stream named {event!r}"})
        if metric.filter or metric.window_hours is not None or metric.window_start_hours:
            errors.append({"loc": ["metrics", i], "msg": "filters and windows are not simulated"})
        stream = scenario.streams.get(metric.event)
        needs_value = metric.kind in (MetricKind.SUM, MetricKind.RATIO, MetricKind.QUANTILE)
        if stream is not None and needs_value:
            if metric.value_field and metric.value_field not in stream.fields:
                errors.append(
                    {"loc": ["metrics", i, "value_field"], "msg": "not a field of the stream"}
                )
            elif not metric.value_field and stream.value is None:
                errors.append({"loc": ["metrics", i], "msg": "its stream has no value"})
    for i, effect in enumerate(scenario.effects):
        if effect.variant is not None and effect.variant not in variants:
            errors.append({"loc": ["effects", i, "variant"], "msg": "not a variant"})
        stream = scenario.streams.get(effect.stream)
        if stream is None:
            errors.append({"loc": ["effects", i, "stream"], "msg": "not a stream"})
            continue
        params = {"rate", *stream.fields} | ({"value"} if stream.value else set())
        if effect.param not in params:
            errors.append(
                {"loc": ["effects", i, "param"], "msg": f"one of {', '.join(sorted(params))}"}
            )
        if effect.profile is not None and effect.param != "rate":
            errors.append({"loc": ["effects", i, "profile"], "msg": "only on rate"})
        for attribute, value in effect.segment.items():
            if value not in scenario.attributes.get(attribute, {}):
                errors.append(
                    {"loc": ["effects", i, "segment", attribute], "msg": "unknown segment"}
                )
    for i, name in enumerate(scenario.pre_period.streams if scenario.pre_period else []):
        if name not in scenario.streams:
            errors.append({"loc": ["pre_period", "streams", i], "msg": "not a stream"})
    errors += _concurrent_errors(scenario, spec.key)
    if scenario.breakage and scenario.breakage.variant not in variants:
        errors.append({"loc": ["breakage", "variant"], "msg": "not a variant"})
    cells = 1
    for shares in scenario.attributes.values():
        cells *= max(len(shares), 1)
    if scenario.concurrent is not None:  # the joint model crosses the attributes with its arms
        cells *= max(len(scenario.concurrent.get("variants") or []), 1)
    if cells * scenario.days > MAX_CELLS:
        errors.append({"loc": ["attributes"], "msg": "too many attribute combinations"})
    return errors


def _concurrent_errors(scenario: Scenario, key: str) -> list[dict[str, Any]]:
    """The concurrent experiment: a valid contract of its own, on the scenario's metrics,
    named apart from the experiment and the attributes; effects name its arms."""
    errors: list[dict[str, Any]] = []
    arms: set[str] = set()
    if scenario.concurrent is not None:
        if "key" not in scenario.concurrent:
            return [{"loc": ["concurrent", "key"], "msg": "is required"}]
        try:
            other = ExperimentSpec.model_validate(scenario.concurrent)
        except PydanticValidationError as exc:
            return list(from_pydantic(exc, prefix=("concurrent",)).details)
        arms = {v.key for v in other.variants}
        if len(arms) < 2 or sum(v.is_control for v in other.variants) != 1:
            errors.append({"loc": ["concurrent", "variants"], "msg": "two or more, one control"})
        if abs(sum(v.weight for v in other.variants) - 1) > WEIGHT_TOLERANCE:
            errors.append({"loc": ["concurrent", "variants"], "msg": "weights must sum to 1"})
        if other.coverage != 1:
            errors.append({"loc": ["concurrent", "coverage"], "msg": "every unit is assigned"})
        if other.key == key or other.key in scenario.attributes:
            errors.append({"loc": ["concurrent", "key"], "msg": "names another experiment"})
        known = {m.key for m in scenario.metrics}
        for metric in other.metrics.all_keys():
            if metric not in known:
                errors.append(
                    {"loc": ["concurrent", "metrics"], "msg": f"unknown metric {metric!r}"}
                )
    for i, effect in enumerate(scenario.effects):
        if effect.concurrent is not None and effect.concurrent not in arms:
            errors.append(
                {"loc": ["effects", i, "concurrent"], "msg": "not an arm of the concurrent one"}
            )
    return errors


def _path(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_scenario(text: str, *, source: str = "scenario") -> Scenario:
    """Parse and validate a scenario; errors name each field path (``streams.purchase.rate``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"{source}: a scenario is a YAML mapping")
    try:
        scenario = Scenario.model_validate(data)
    except PydanticValidationError as exc:
        errors = list(from_pydantic(exc).details)
    else:
        errors = _cross_check(scenario)
    if errors:
        for error in errors:
            error["path"] = _path(error["loc"])
        summary = "; ".join(f"{e['path']}: {e['msg']}" for e in errors)
        raise ValidationError(f"invalid scenario {source}: {summary}", details=errors)
    return scenario


def scenario_names() -> list[str]:
    """The names of the scenarios shipped with Splitlab, sorted."""
    folder = resources.files(SCENARIO_PACKAGE)
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


@cache
def _shipped(name: str) -> Scenario:
    path = resources.files(SCENARIO_PACKAGE) / f"{name}.yaml"
    return parse_scenario(path.read_text(encoding="utf-8"), source=f"{name}.yaml")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a scenario file by path."""
    text = str(name_or_path)
    if text in scenario_names():
        return _shipped(text)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return parse_scenario(path.read_text(encoding="utf-8"), source=path.name)
    raise NotFoundError(
        f"no scenario {text!r}; shipped: {', '.join(scenario_names())} (or pass a YAML file)",
        details={"scenario": text},
    )


def segment_cells(scenario: Scenario) -> list[dict[str, str]]:
    """Every combination of attribute values (one dict per combination)."""
    names = list(scenario.attributes)
    values = [list(scenario.attributes[n]) for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]

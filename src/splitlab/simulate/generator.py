"""Draw a scenario's units, exposures and events: numpy over whole columns, no loop per unit
or event, and no I/O. ``generate`` is the library entry point.

Units are assigned with ``splitlab.assignment`` (the experiment's own seed and weights), so a
sample ratio mismatch appears only where a scenario breaks assignment on purpose. The same
seed, scenario, size and start give identical data; ids derive from the experiment key, so
writing the same run twice stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from splitlab.assignment import assign_bulk
from splitlab.assignment.specs import config_from_spec
from splitlab.domain import ExperimentSpec
from splitlab.simulate import model
from splitlab.simulate.columns import (
    attribute_json,
    coded,
    json_objects,
    nulls,
    numbered,
    numbered_unicode,
)
from splitlab.simulate.scenario import Distribution, Scenario, load_scenario

SECONDS_PER_DAY = 86_400.0
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Population:
    """Units' covariates (one element per unit): arrival day and time within it, attribute
    codes, the latent propensity ``z`` and its pre-period twin."""

    arrival: IntArray
    fraction: FloatArray
    codes: dict[str, IntArray]
    z: FloatArray
    z_pre: FloatArray

    def __len__(self) -> int:
        return int(self.arrival.shape[0])

    def take(self, rows: npt.NDArray[Any]) -> Population:
        return Population(
            self.arrival[rows],
            self.fraction[rows],
            {k: v[rows] for k, v in self.codes.items()},
            self.z[rows],
            self.z_pre[rows],
        )


def draw_population(scenario: Scenario, rng: np.random.Generator, n: int, days: int) -> Population:
    arrival = rng.choice(days, size=n, p=scenario.arrival.day_weights(days)).astype(np.int64)
    fraction = rng.random(n)
    codes = {}
    for name, shares in scenario.attributes.items():
        p = np.array(list(shares.values()), dtype=float)
        codes[name] = rng.choice(p.size, size=n, p=p / p.sum()).astype(np.int64)
    z = rng.standard_normal(n)
    rho = scenario.pre_period.correlation if scenario.pre_period else 0.0
    z_pre = rho * z + np.sqrt(1.0 - rho * rho) * rng.standard_normal(n)
    return Population(arrival, fraction, codes, z, z_pre)


def draw_values(dist: Distribution, mean: FloatArray, rng: np.random.Generator) -> FloatArray:
    """One value per element of ``mean`` (the per-event mean) from ``dist``'s family."""
    n = mean.shape[0]
    if dist.dist == "constant":
        values = mean.astype(float, copy=True)
    elif dist.dist == "normal":
        values = mean + dist.sd * rng.standard_normal(n)
    elif dist.dist == "lognormal":
        values = np.exp(
            np.log(np.maximum(mean, 1e-300))
            - dist.sigma**2 / 2
            + dist.sigma * rng.standard_normal(n)
        )
    elif dist.dist == "gamma":
        shape = 1.0 / dist.cv**2
        values = rng.gamma(shape, np.maximum(mean, 1e-300) / shape)
    else:  # beta
        m = np.clip(mean, 1e-6, 1 - 1e-6)
        values = rng.beta(m * dist.concentration, (1 - m) * dist.concentration)
    if dist.round is not None:
        values = np.round(values, dist.round)
    return values


@dataclass(frozen=True)
class StreamDraw:
    """One stream's events: owning unit (row of the population), day since exposure and
    position within that day (0–1; None for pre-period and truth draws), value and fields."""

    unit: IntArray
    day: IntArray | None
    position: FloatArray | None
    value: FloatArray | None
    fields: dict[str, FloatArray] = field(default_factory=dict)


def draw_stream(
    scenario: Scenario,
    name: str,
    population: Population,
    variant: IntArray,
    days: int,
    rng: np.random.Generator,
    *,
    timed: bool = True,
    pre_period: bool = False,
    only: str | None = None,
) -> StreamDraw:
    """Events of stream ``name`` for every unit (``variant`` −1 in the pre-period: only the
    baseline effects of ``variant: null`` apply); ``only`` draws just that value (``value``
    or a field name) and no times."""
    stream = scenario.streams[name]
    codes = population.codes
    observed = days - population.arrival
    if pre_period:
        variant = np.full(len(population), -1, np.int64)
        rate = stream.rate * (scenario.pre_period.rate_factor if scenario.pre_period else 1.0)
        frailty = model.frailty(population.z_pre, scenario.heterogeneity)
        daily = None
        mean_factor: FloatArray | float = 1.0
    else:
        rate = stream.rate
        frailty = model.frailty(population.z, scenario.heterogeneity)
        daily = model.daily_rates(scenario, name, variant, codes, days)
        mean_factor = 1.0 if daily.constant else daily.mean_factor(observed)
    intensity = (
        rate * model.static_multiplier(scenario, name, "rate", variant, codes) * mean_factor
    ) * frailty
    if stream.occurrence == "once":
        counts = (rng.random(len(population)) < np.minimum(intensity, 1.0)).astype(np.int64)
    else:
        counts = rng.poisson(intensity)
    unit = np.repeat(np.arange(len(population), dtype=np.int64), counts)
    day = position = None
    if timed and not pre_period:
        u = rng.random(unit.shape[0])
        if daily is None or daily.constant:
            day = np.minimum((u * observed[unit]).astype(np.int64), observed[unit] - 1)
        else:
            cumulative = np.cumsum(daily.factors, axis=1)[daily.pattern[unit]]
            limit = cumulative[np.arange(unit.shape[0]), observed[unit] - 1]
            day = np.sum(cumulative < (u * limit)[:, None], axis=1).astype(np.int64)
            day = np.minimum(day, observed[unit] - 1)
        position = rng.random(unit.shape[0])
    elif timed:
        position = rng.random(unit.shape[0])
    value = None
    if stream.value is not None and only in (None, "value"):
        mean = stream.value.mean * model.static_multiplier(scenario, name, "value", variant, codes)
        value = draw_values(stream.value, mean[unit], rng)
    fields = {}
    for field_name, dist in stream.fields.items():
        if only not in (None, field_name):
            continue
        mean = dist.mean * model.static_multiplier(scenario, name, field_name, variant, codes)
        fields[field_name] = draw_values(dist, mean[unit], rng)
    return StreamDraw(unit, day, position, value, fields)


@dataclass(frozen=True)
class SimulatedData:
    """One simulated run: Arrow tables in the ``/api/track`` column names, ready for
    ``splitlab import`` (``exposures``: experimentKey, variantKey, userKey, occurredAt,
    props with the unit's attributes; ``events``: those plus eventType, value, eventId;
    experiment, variant and event names and exposures' props are dictionary columns), and
    the ground truth (``truth``: see ``splitlab.simulate.truth``)."""

    scenario: Scenario
    spec: ExperimentSpec
    seed: int
    units: int
    days: int
    start: datetime
    exposures: pa.Table
    events: pa.Table
    truth: dict[str, Any]
    dropped: dict[str, int] = field(default_factory=dict)
    """Units lost after assignment per variant (``breakage``)."""
    concurrent: ExperimentSpec | None = None
    """The scenario's concurrent experiment (``Scenario.concurrent``), if any."""
    concurrent_exposures: pa.Table | None = None
    """Its exposures: the same units at the same moments, in its own arms."""

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


def default_start(days: int, *, today: datetime | None = None) -> datetime:
    """UTC midnight ``days`` days before today: the run ends at the last midnight."""
    now = today or datetime.now(UTC)
    return datetime.combine(now.date(), time(), tzinfo=UTC) - timedelta(days=days)


def _timestamps(start: datetime, seconds: FloatArray) -> pa.Array:
    base = int(start.timestamp() * 1_000_000)
    return pa.array(base + np.round(seconds * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC"))


def generate(
    scenario: Scenario | str,
    *,
    units: int | None = None,
    days: int | None = None,
    seed: int | None = None,
    key: str | None = None,
    start: datetime | None = None,
    with_truth: bool = True,
) -> SimulatedData:
    """Simulate ``scenario`` (a ``Scenario`` or a shipped name / YAML path): no I/O.

    ``units``, ``days`` and ``seed`` default to the scenario's; ``key`` (the experiment key,
    also the prefix of every unit and event id) to its name; ``start`` to UTC midnight
    ``days`` days ago. Returns Arrow tables of exposures and events plus the ground truth.
    """
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    n = scenario.units if units is None else units
    days = scenario.days if days is None else days
    seed = scenario.seed if seed is None else seed
    spec = scenario.spec(key)
    start = default_start(days) if start is None else start.astimezone(UTC)
    spec = spec.model_copy(update={"start_at": start})
    rng = np.random.default_rng(seed)

    names = numbered_unicode(f"{spec.key}-u", n)
    assigned = assign_bulk(config_from_spec(spec), names)
    variant = assigned.variant_index.astype(np.int64)
    joint = scenario.joint()  # the concurrent experiment's arm is one more attribute
    population = draw_population(joint, rng, n, days)
    other = scenario.concurrent_spec()
    if other is not None:
        other = other.model_copy(update={"start_at": start})
        arms = assign_bulk(config_from_spec(other), names).variant_index.astype(np.int64)
        population.codes[other.key] = arms  # by its own hashing, not by the draw
    keep = variant >= 0
    dropped: dict[str, int] = {}
    if scenario.breakage is not None:
        broken = scenario.variant_keys.index(scenario.breakage.variant)
        lost = (variant == broken) & (rng.random(n) < scenario.breakage.drop_fraction)
        dropped[scenario.breakage.variant] = int(lost.sum())
        keep &= ~lost
    rows = np.flatnonzero(keep)
    unit_ids = numbered(f"{spec.key}-u", 0, n)
    if rows.shape[0] < n:
        unit_ids = unit_ids.take(rows)
    population, variant = population.take(rows), variant[rows]
    hidden = frozenset([other.key] if other is not None else [])
    exposures, events = _tables(
        joint, spec, population, variant, unit_ids, days, start, rng, hidden=hidden
    )
    concurrent_exposures = None
    if other is not None:
        arm_keys = pa.array([v.key for v in other.variants], pa.string())
        concurrent_exposures = exposures.set_column(
            0, "experimentKey", coded([other.key], None, len(population))
        ).set_column(1, "variantKey", coded(arm_keys, population.codes[other.key]))
    truth = {}
    if with_truth:
        from splitlab.simulate.truth import compute_truth, concurrent_truth

        truth = compute_truth(joint, spec=spec, days=days, seed=seed)
        truth |= {"units": n, "seed": seed, "start": start.isoformat(), "dropped": dropped}
        if other is not None:
            truth["concurrent"] = concurrent_truth(truth, other)
    return SimulatedData(
        scenario,
        spec,
        seed,
        n,
        days,
        start,
        exposures,
        events,
        truth,
        dropped,
        concurrent=other,
        concurrent_exposures=concurrent_exposures,
    )


def _tables(
    scenario: Scenario,
    spec: ExperimentSpec,
    population: Population,
    variant: IntArray,
    unit_ids: pa.StringArray | pa.ChunkedArray,
    days: int,
    start: datetime,
    rng: np.random.Generator,
    *,
    hidden: frozenset[str] = frozenset(),
) -> tuple[pa.Table, pa.Table]:
    # Names repeated on every row (experiment, variant, event name, a unit's attributes)
    # are dictionary columns: each distinct text is built and written once.
    variants = pa.array([v.key for v in spec.variants], pa.string())
    stream_names = list(dict.fromkeys([*scenario.streams, *scenario.pre_streams()]))
    t0 = (population.arrival + population.fraction) * SECONDS_PER_DAY
    horizon = days * SECONDS_PER_DAY
    observed = days - population.arrival
    # ``hidden``: model-only attributes (a concurrent experiment's arm), not sent as props
    attributes = {
        name: list(shares) for name, shares in scenario.attributes.items() if name not in hidden
    }
    exposures = pa.table(
        {
            "experimentKey": coded([spec.key], None, len(population)),
            "variantKey": coded(variants, variant),
            "userKey": unit_ids,
            "occurredAt": _timestamps(start, t0),
            "props": attribute_json(attributes, population.codes, len(population)),
        }
    )
    parts: list[pa.Table] = []
    counter = 0
    pre_seconds = scenario.pre_days * SECONDS_PER_DAY
    draws = [(name, False) for name in scenario.streams] + [
        (name, True) for name in scenario.pre_streams()
    ]
    for name, pre in draws:
        draw = draw_stream(scenario, name, population, variant, days, rng, pre_period=pre)
        unit = draw.unit
        count = unit.shape[0]
        if count == 0:
            continue
        assert draw.position is not None
        if pre:
            # strictly before exposure, within the metrics' CUPED pre-period
            seconds = t0[unit] - pre_seconds * (0.001 + 0.998 * draw.position)
            variant_keys = nulls(count)
        else:
            assert draw.day is not None
            span = (horizon - t0[unit]) / observed[unit]
            seconds = t0[unit] + (draw.day + 0.001 + 0.998 * draw.position) * span
            variant_keys = coded(variants, variant[unit])
        value = (
            pa.array(draw.value, pa.float64())
            if draw.value is not None
            else pa.nulls(count, pa.float64())
        )
        props = (
            json_objects({k: pa.array(v) for k, v in draw.fields.items()}, quoted=False)
            if draw.fields
            else pa.nulls(count, pa.string())
        )
        parts.append(
            pa.table(
                {
                    "experimentKey": coded([spec.key], None, count),
                    "variantKey": variant_keys,
                    "userKey": unit_ids.take(unit),
                    "eventType": coded(stream_names, np.full(count, stream_names.index(name))),
                    "value": value,
                    "eventId": numbered(f"{spec.key}-e", counter, count),
                    "occurredAt": _timestamps(start, seconds),
                    "props": props,
                }
            )
        )
        counter += count
    events = pa.concat_tables(parts) if parts else _empty_events()
    return exposures, events


def _empty_events() -> pa.Table:
    return pa.table(
        {
            "experimentKey": nulls(0),
            "variantKey": nulls(0),
            "userKey": pa.array([], pa.string()),
            "eventType": nulls(0),
            "value": pa.array([], pa.float64()),
            "eventId": pa.array([], pa.string()),
            "occurredAt": pa.array([], pa.timestamp("us", tz="UTC")),
            "props": pa.array([], pa.string()),
        }
    )

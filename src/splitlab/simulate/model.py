"""The behavioural model shared by the generator (rows = units) and the truth (rows = cells).

Rows are described by a variant index and attribute codes (the position of each attribute's
value in ``scenario.attributes[name]``); every function is vectorised over rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from splitlab.simulate.scenario import Effect, Profile, Scenario, Stream

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Codes = Mapping[str, npt.NDArray[np.integer]]


def base_value(stream: Stream, param: str) -> float:
    """The control (baseline) value of a stream's parameter."""
    if param == "rate":
        return stream.rate
    if param == "value":
        assert stream.value is not None
        return stream.value.mean
    return stream.fields[param].mean


def lift_of(scenario: Scenario, effect: Effect) -> float:
    """An effect as a relative lift (an absolute ``value`` is turned into one)."""
    if effect.lift is not None:
        return effect.lift
    assert effect.value is not None
    base = base_value(scenario.streams[effect.stream], effect.param)
    return effect.value / base - 1.0 if base else 0.0


def matches(
    scenario: Scenario, effect: Effect, variant: npt.NDArray[np.integer], codes: Codes
) -> npt.NDArray[np.bool_]:
    """Rows the effect applies to: its variant (any for ``variant: null``) and segment."""
    hit = np.ones(variant.shape[0], np.bool_)
    if effect.variant is not None:
        hit &= variant == scenario.variant_keys.index(effect.variant)
    for attribute, value in effect.segment.items():
        hit &= codes[attribute] == list(scenario.attributes[attribute]).index(value)
    return hit


def static_multiplier(
    scenario: Scenario,
    stream: str,
    param: str,
    variant: npt.NDArray[np.integer],
    codes: Codes,
) -> FloatArray:
    """Product of ``1 + lift`` over the time-invariant effects on ``stream.param`` per row."""
    out = np.ones(variant.shape[0])
    for effect in scenario.effects:
        if effect.stream == stream and effect.param == param and effect.profile is None:
            out[matches(scenario, effect, variant, codes)] *= 1.0 + lift_of(scenario, effect)
    return out


def profile_shape(profile: Profile, days: int) -> FloatArray:
    """``g(d)`` for d = 0 … days − 1 (see ``scenario``)."""
    d = np.arange(days, dtype=float)
    if profile.shape == "novelty":
        return profile.final + (1.0 - profile.final) * 0.5 ** (d / profile.half_life_days)
    return (d >= profile.after_days).astype(float)


@dataclass(frozen=True)
class DailyRates:
    """Time-varying effects on a stream's rate, grouped by which of them apply to a row.

    ``pattern[i]`` indexes ``factors`` (patterns × days): the rate multiplier on each day
    since exposure. Without time-varying effects there is one pattern of ones.
    """

    pattern: IntArray
    factors: FloatArray

    def mean_factor(self, observed_days: npt.NDArray[np.integer]) -> FloatArray:
        """Mean multiplier over each row's first ``observed_days`` days."""
        cumulative = np.cumsum(self.factors, axis=1)
        return cumulative[self.pattern, observed_days - 1] / observed_days

    @property
    def constant(self) -> bool:
        return bool(np.all(self.factors == 1.0))


def daily_rates(
    scenario: Scenario,
    stream: str,
    variant: npt.NDArray[np.integer],
    codes: Codes,
    days: int,
) -> DailyRates:
    timed = [e for e in scenario.effects if e.stream == stream and e.profile is not None]
    pattern = np.zeros(variant.shape[0], np.int64)
    for bit, effect in enumerate(timed):
        pattern |= matches(scenario, effect, variant, codes).astype(np.int64) << bit
    factors = np.ones((1 << len(timed), days))
    for combo in range(1 << len(timed)):
        for bit, effect in enumerate(timed):
            if combo >> bit & 1:
                assert effect.profile is not None
                factors[combo] *= 1.0 + lift_of(scenario, effect) * profile_shape(
                    effect.profile, days
                )
    return DailyRates(pattern, factors)


def frailty(z: FloatArray, heterogeneity: float) -> FloatArray:
    """Log-normal multiplier with mean 1: ``exp(h z − h²/2)``."""
    return np.exp(heterogeneity * z - heterogeneity**2 / 2.0)

"""Sample size, MDE and duration of a planned experiment: the inputs checked once (the
calculator, its JSON endpoint and the intake wizard share them) and every number taken from
``splitlab.stats.power``.

The MDE is relative to the baseline, as an experiment's ``plan.mde``:

* **proportion** — a conversion rate p; detect p → p (1 + mde). Cohen's h on the arcsine
  scale, which is statsmodels ``NormalIndPower`` with ``proportion_effectsize``.
* **mean** — a per-unit mean μ with per-unit standard deviation σ; detect μ → μ (1 + mde),
  i.e. an absolute change mde · μ, Cohen's d = mde · μ / σ (``NormalIndPower``).
* **ratio** — a ratio metric R = Σnum / Σden with its per-unit delta-method standard
  deviation (√ ``RatioStats.variance``); sized as a mean.

Each treatment is compared with the control at ``alpha`` (as the analysis does before its
correction across metrics); ``n_per_variant`` units go to every variant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from splitlab.domain.limits import MAX_VARIANTS
from splitlab.errors import ValidationError, from_pydantic
from splitlab.stats.power import (
    achieved_power,
    duration_days,
    mde_for_sample_size,
    sample_size_means,
    sample_size_proportions,
)
from splitlab.stats.results import Alternative

MetricShape = Literal["proportion", "mean", "ratio"]
Sidedness = Literal["two-sided", "one-sided"]
WEEKS = (1, 2, 3, 4, 6, 8)
"""Rows of the weeks × MDE table."""
MDE_MULTIPLES = (0.5, 0.75, 1.0, 1.5, 2.0)
"""Columns of the weeks × MDE table, as multiples of the chosen MDE."""
CURVE_POINTS = 41


class SizingInputs(BaseModel):
    """What a sample-size question needs; field errors name the field (422)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: MetricShape = Field(
        default="proportion", description="proportion (conversion rate), mean or ratio metric"
    )
    baseline: float = Field(
        ge=1e-9, le=1e12, description="baseline rate (0–1), mean or ratio of the metric"
    )
    sd: float | None = Field(
        default=None,
        gt=0,
        le=1e12,
        description="per-unit standard deviation (mean and ratio metrics; for a ratio, the "
        "delta-method one)",
    )
    mde: float = Field(
        ge=1e-6,
        le=10,
        description="minimum detectable effect, relative to the baseline (0.05 = 5%)",
    )
    alpha: float = Field(default=0.05, ge=1e-6, lt=0.5, description="significance level")
    power: float = Field(default=0.8, ge=0.5, le=0.9999, description="power to detect the MDE")
    daily_units: float | None = Field(
        default=None, ge=0.01, le=1e10, description="eligible units per day (for the duration)"
    )
    coverage: float = Field(
        default=1.0, ge=1e-4, le=1, description="fraction of eligible units that enter"
    )
    variants: int = Field(
        default=2, ge=2, le=MAX_VARIANTS, description="number of variants, control included"
    )
    sidedness: Sidedness = Field(default="two-sided", description="two-sided or one-sided test")


def problems(inputs: SizingInputs) -> list[tuple[str, str]]:
    """Cross-field problems as (field, message): a rate outside (0, 1), an MDE that takes the
    rate to 1 or past it, a mean or ratio metric without its standard deviation."""
    found: list[tuple[str, str]] = []
    if inputs.kind == "proportion":
        if inputs.baseline >= 1:
            found.append(("baseline", "a conversion rate lies between 0 and 1, e.g. 0.12"))
        elif inputs.baseline * (1 + inputs.mde) >= 1:
            found.append(
                ("mde", f"a {inputs.mde:.0%} lift takes a {inputs.baseline:g} rate to 1 or above")
            )
    elif inputs.sd is None:
        found.append(("sd", f"a {inputs.kind} metric needs its per-unit standard deviation"))
    return found


def parse_inputs(data: Mapping[str, object]) -> SizingInputs:
    """``SizingInputs`` from loose data (form fields, query parameters), checked field by
    field and across fields; raises our ``ValidationError`` whose details name each field."""
    try:
        inputs = SizingInputs.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from exc
    _check(inputs)
    return inputs


def _check(inputs: SizingInputs) -> None:
    found = problems(inputs)
    if found:
        raise ValidationError(
            "invalid input: " + "; ".join(f"{field}: {message}" for field, message in found),
            details=[{"loc": [field], "msg": message} for field, message in found],
        )


class WeekRow(BaseModel):
    """One row of the weeks × MDE table."""

    weeks: int
    n_per_variant: int
    mde_at_power: float | None = Field(description="relative MDE detectable at the target power")
    power: list[float | None] = Field(description="power at each column's MDE")


class CurvePoint(BaseModel):
    """Power at one relative MDE on the power curve."""

    mde: float
    power: float | None


class Sizing(BaseModel):
    """The answer: units, duration, the weeks × MDE table and the power curve."""

    inputs: SizingInputs
    absolute_mde: float = Field(description="the MDE in the metric's units")
    n_per_variant: int | None = Field(description="units needed in each variant")
    n_total: int | None
    days: int | None = Field(description="days to enrol n_total (needs daily_units)")
    mde_columns: list[float] = Field(description="relative MDEs of the table's columns")
    weeks: list[WeekRow]
    curve: list[CurvePoint] = Field(description="power over relative MDE at n_per_variant")
    method: str


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _alternative(inputs: SizingInputs) -> Alternative:
    return "two-sided" if inputs.sidedness == "two-sided" else "greater"


def _n_per_variant(inputs: SizingInputs) -> float:
    alternative = _alternative(inputs)
    if inputs.kind == "proportion":
        size = sample_size_proportions(
            inputs.baseline,
            inputs.mde,
            relative=True,
            alpha=inputs.alpha,
            power=inputs.power,
            alternative=alternative,
        )
    else:
        assert inputs.sd is not None
        size = sample_size_means(
            inputs.sd,
            inputs.mde * inputs.baseline,
            alpha=inputs.alpha,
            power=inputs.power,
            alternative=alternative,
        )
    return float(size.n_control[()])


def _power(inputs: SizingInputs, mdes: np.ndarray, n: float | np.ndarray) -> np.ndarray:
    alternative = _alternative(inputs)
    if inputs.kind == "proportion":
        return achieved_power(
            mdes, n, baseline=inputs.baseline, relative=True, alpha=inputs.alpha,
            alternative=alternative,
        )  # fmt: skip
    return achieved_power(
        mdes * inputs.baseline, n, std=inputs.sd, alpha=inputs.alpha, alternative=alternative
    )


def _mde_at(inputs: SizingInputs, n: float) -> float:
    alternative = _alternative(inputs)
    if inputs.kind == "proportion":
        value = mde_for_sample_size(
            n, baseline=inputs.baseline, relative=True, alpha=inputs.alpha,
            power=inputs.power, alternative=alternative,
        )  # fmt: skip
        return float(value)
    absolute = mde_for_sample_size(
        n, std=inputs.sd, alpha=inputs.alpha, power=inputs.power, alternative=alternative
    )
    return float(absolute) / inputs.baseline


def size(inputs: SizingInputs) -> Sizing:
    """Units per variant, total, days, a weeks × MDE power table and the power curve. An
    answer out of floating-point range (an MDE too small to detect at any size) is None."""
    _check(inputs)
    with np.errstate(all="ignore"):
        return _size(inputs)


def _size(inputs: SizingInputs) -> Sizing:
    n_exact = _n_per_variant(inputs)
    n = math.ceil(n_exact * (1 - 1e-12)) if math.isfinite(n_exact) else None
    days: int | None = None
    if n is not None and inputs.daily_units is not None:
        d = duration_days(n, inputs.daily_units, inputs.coverage, inputs.variants)
        days = int(d) if math.isfinite(float(d)) else None
    columns = [round(inputs.mde * m, 10) for m in MDE_MULTIPLES]
    if inputs.kind == "proportion":  # a lift that leaves (0, 1) has no power to report
        columns = [c for c in columns if inputs.baseline * (1 + c) < 1]
    rows: list[WeekRow] = []
    if inputs.daily_units is not None:
        for weeks in WEEKS:
            per_variant = inputs.daily_units * inputs.coverage * 7 * weeks / inputs.variants
            if per_variant < 2:
                continue
            powers = _power(inputs, np.asarray(columns), per_variant)
            rows.append(
                WeekRow(
                    weeks=weeks,
                    n_per_variant=math.floor(per_variant),
                    mde_at_power=_finite(_mde_at(inputs, per_variant)),
                    power=[_finite(float(p)) for p in powers],
                )
            )
    curve: list[CurvePoint] = []
    if n is not None:
        top = 3 * inputs.mde
        if inputs.kind == "proportion":
            top = min(top, (1 / inputs.baseline - 1) * 0.999)
        grid = np.linspace(top / (CURVE_POINTS - 1), top, CURVE_POINTS - 1)
        powers = _power(inputs, grid, float(n))
        curve = [CurvePoint(mde=0.0, power=inputs.alpha)]  # no effect: the false-positive rate
        curve += [
            CurvePoint(mde=float(m), power=_finite(float(p)))
            for m, p in zip(grid, powers, strict=True)
        ]
    method = (
        "Normal approximation, Cohen's h on the arcsine scale (statsmodels NormalIndPower)"
        if inputs.kind == "proportion"
        else "Normal approximation, Cohen's d = mde·baseline/sd (statsmodels NormalIndPower)"
    )
    return Sizing(
        inputs=inputs,
        absolute_mde=inputs.mde * inputs.baseline,
        n_per_variant=n,
        n_total=n * inputs.variants if n is not None else None,
        days=days,
        mde_columns=columns,
        weeks=rows,
        curve=curve,
        method=method,
    )

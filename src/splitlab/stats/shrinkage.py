"""James–Stein shrinkage of many experiments' effects: the winner's curse, de-biased.

The experiments a team ships are the ones whose measured lift came out large; part of that
largeness is noise, so the raw sum of shipped lifts overstates what the programme gained.
Shrinking every estimate toward the grand mean of *all* decided experiments (winners and
losers alike) before summing the shipped ones removes most of that selection bias.

Positive-part James–Stein toward the grand mean, each estimate with its own standard error
(Efron & Morris 1973, 1975; with equal standard errors it is their estimator exactly)::

    ȳ   = (1/k) Σⱼ yⱼ                           grand mean of the k estimates
    S   = Σⱼ (yⱼ − ȳ)²                          spread around it
    Bᵢ  = min(1, (k − 3) sᵢ² / S)               shrinkage of estimate i (0 when k < 4)
    θ̂ᵢ  = ȳ + (1 − Bᵢ)(yᵢ − ȳ)

A noisy estimate (large sᵢ) is pulled further toward ȳ than a precise one; when the spread S
is no larger than the noise, every estimate becomes ȳ. ``k − 3`` (not ``k − 2``) because the
target ȳ is itself estimated.

The shrunk total of a subset T (the shipped changes) is Σ_{i∈T} θ̂ᵢ = Σⱼ wⱼ yⱼ with
``wⱼ = [j ∈ T](1 − Bⱼ) + (1/k) Σ_{i∈T} Bᵢ``; its standard error √(Σⱼ wⱼ² sⱼ²) treats the
factors Bᵢ as fixed (the estimates independent), so it slightly understates the uncertainty
of the shrunk total. The raw total Σ_{i∈T} yᵢ has standard error √(Σ_{i∈T} sᵢ²).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats.aggregates import FloatArray

MIN_ESTIMATES = 4
"""Fewer estimates leave ``k − 3 ≤ 0``: nothing is shrunk."""


@dataclass(frozen=True, eq=False)
class Shrunk:
    """Every estimate shrunk (see the module docstring).

    ``estimates``: θ̂ᵢ; ``factors``: Bᵢ (0 = kept, 1 = pulled all the way to ``grand_mean``);
    ``grand_mean``: ȳ; ``spread``: S; ``shrunk``: False when there were fewer than
    ``MIN_ESTIMATES`` estimates or S = 0 (then θ̂ = y, B = 0 … or all ȳ when S = 0)."""

    estimates: FloatArray
    factors: FloatArray
    grand_mean: float
    spread: float
    shrunk: bool


def james_stein(estimates: FloatArray, standard_errors: FloatArray) -> Shrunk:
    """Positive-part James–Stein shrinkage of ``estimates`` toward their grand mean, each with
    its own standard error (non-finite estimates or non-positive SEs are refused)."""
    y = np.asarray(estimates, dtype=float)
    s = np.asarray(standard_errors, dtype=float)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError("estimates and standard errors are two 1-d arrays of the same length")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError("estimates must be finite and standard errors finite and positive")
    k = y.size
    if k == 0:
        return Shrunk(y.copy(), np.zeros(0), float("nan"), 0.0, False)
    mean = float(y.mean())
    spread = float(np.sum((y - mean) ** 2))
    if k < MIN_ESTIMATES:
        return Shrunk(y.copy(), np.zeros(k), mean, spread, False)
    if spread == 0.0:
        return Shrunk(np.full(k, mean), np.ones(k), mean, 0.0, True)
    factors = np.minimum(1.0, (k - 3) * s**2 / spread)
    return Shrunk(mean + (1.0 - factors) * (y - mean), factors, mean, spread, True)


@dataclass(frozen=True)
class Total:
    """A sum of estimates with its standard error and a two-sided confidence interval."""

    value: float
    se: float
    ci_low: float
    ci_high: float
    level: float


def _total(value: float, se: float, level: float) -> Total:
    z = float(special.ndtri(0.5 + level / 2))
    return Total(value, se, value - z * se, value + z * se, level)


def raw_total(
    estimates: FloatArray,
    standard_errors: FloatArray,
    selected: npt.ArrayLike,
    *,
    level: float = 0.95,
) -> Total:
    """Σ_{i∈T} yᵢ with SE √(Σ_{i∈T} sᵢ²); ``selected`` is a boolean mask of T."""
    y = np.asarray(estimates, dtype=float)
    s = np.asarray(standard_errors, dtype=float)
    mask = np.asarray(selected, dtype=bool)
    return _total(float(y[mask].sum()), float(np.sqrt(np.sum(s[mask] ** 2))), level)


def shrunk_total(
    estimates: FloatArray,
    standard_errors: FloatArray,
    selected: npt.ArrayLike,
    *,
    level: float = 0.95,
) -> tuple[Total, Shrunk]:
    """Σ_{i∈T} θ̂ᵢ over the James–Stein estimates of *all* ``estimates`` (the population the
    selection was made from), with the SE of the module docstring; and the shrinkage itself."""
    y = np.asarray(estimates, dtype=float)
    s = np.asarray(standard_errors, dtype=float)
    mask = np.asarray(selected, dtype=bool)
    shrunk = james_stein(y, s)
    k = y.size
    if k == 0:
        return _total(0.0, 0.0, level), shrunk
    factors = shrunk.factors
    weights = np.where(mask, 1.0 - factors, 0.0) + float(factors[mask].sum()) / k
    value = float(shrunk.estimates[mask].sum())
    return _total(value, float(np.sqrt(np.sum(weights**2 * s**2))), level), shrunk

"""How well a team's stated probabilities match what happened: the Brier score, its skill
against always forecasting the base rate, and the reliability diagram's bins.

For forecasts pᵢ ∈ [0, 1] of binary outcomes oᵢ ∈ {0, 1}, n of them::

    Brier      = (1/n) Σ (pᵢ − oᵢ)²                 0 is perfect, 0.25 is a coin flip at 0.5
    reference  = ō (1 − ō),  ō = (1/n) Σ oᵢ         Brier of always forecasting the base rate
    skill      = 1 − Brier / reference              > 0 beats the base rate
                                                    (undefined when ō is 0 or 1)

Reliability bins split [0, 1] into ``bins`` equal intervals (the last one closed); each bin
reports its count, mean forecast, observed frequency and the frequency's Wilson score
interval — a calibrated forecaster's points lie on the diagonal within their intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from splitlab.stats.aggregates import FloatArray


def _check(forecasts: FloatArray, outcomes: FloatArray) -> tuple[FloatArray, FloatArray]:
    p = np.asarray(forecasts, dtype=float)
    o = np.asarray(outcomes, dtype=float)
    if p.ndim != 1 or p.shape != o.shape:
        raise ValueError("forecasts and outcomes are two 1-d arrays of the same length")
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ValueError("forecasts are probabilities between 0 and 1")
    if not np.all((o == 0) | (o == 1)):
        raise ValueError("outcomes are 0 or 1")
    return p, o


@dataclass(frozen=True)
class BrierScore:
    """``score``: the Brier score; ``reference``: ō(1 − ō); ``skill``: 1 − score/reference
    (None when every outcome is the same); ``base_rate``: ō; ``n``."""

    score: float
    reference: float
    skill: float | None
    base_rate: float
    n: int


def brier(forecasts: FloatArray, outcomes: FloatArray) -> BrierScore | None:
    """The Brier score of ``forecasts`` against 0/1 ``outcomes`` (None for no forecasts)."""
    p, o = _check(forecasts, outcomes)
    if p.size == 0:
        return None
    score = float(np.mean((p - o) ** 2))
    base = float(o.mean())
    reference = base * (1 - base)
    skill = 1 - score / reference if reference > 0 else None
    return BrierScore(score, reference, skill, base, int(p.size))


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin [low, high) of the reliability diagram (the last one includes 1)."""

    low: float
    high: float
    n: int
    mean_forecast: float | None
    observed: float | None
    observed_low: float | None
    observed_high: float | None


def wilson(successes: float, n: float, *, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes/n`` (n > 0)."""
    z = float(special.ndtri(0.5 + level / 2))
    phat = successes / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def reliability(
    forecasts: FloatArray, outcomes: FloatArray, *, bins: int = 5, level: float = 0.95
) -> list[ReliabilityBin]:
    """The reliability diagram's ``bins`` equal-width bins over [0, 1] (see the module)."""
    if bins < 1:
        raise ValueError("at least one bin")
    p, o = _check(forecasts, outcomes)
    index = np.minimum((p * bins).astype(int), bins - 1)
    found = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        low, high = b / bins, (b + 1) / bins
        if n == 0:
            found.append(ReliabilityBin(low, high, 0, None, None, None, None))
            continue
        hits = float(o[inside].sum())
        lo, hi = wilson(hits, n, level=level)
        found.append(ReliabilityBin(low, high, n, float(p[inside].mean()), hits / n, lo, hi))
    return found

"""Thompson-sampling traffic weights for multi-armed bandits, and the Beta posteriors of
binary arms as the normal posteriors those weights take."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from splitlab.stats.aggregates import FloatArray
from splitlab.stats.bayesian import probability_best


def thompson_weights(
    posterior_means: npt.ArrayLike,
    posterior_variances: npt.ArrayLike,
    *,
    min_weight: float = 0.01,
    draws: int = 10_000,
    seed: int | np.random.Generator | None = 0,
) -> FloatArray:
    """Traffic weights ∝ P(arm is best) under independent normal posteriors (last axis = arms).

    wᵢ = P(best)ᵢ (Monte Carlo, :func:`probability_best`), then every arm gets at least
    ``min_weight`` so no arm starves: arms below the floor are set to it and the others are
    rescaled to share the remaining 1 − (#floored)·min_weight (repeated until stable).
    Weights sum to 1 along the last axis.  ``min_weight · k`` must not exceed 1.
    """
    weights = probability_best(posterior_means, posterior_variances, draws=draws, seed=seed)
    k = weights.shape[-1]
    if min_weight < 0 or min_weight * k > 1:
        raise ValueError("min_weight must be in [0, 1/k]")
    floored = np.zeros(weights.shape, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(k):
            free_mass = 1.0 - min_weight * np.sum(floored, axis=-1, keepdims=True)
            free_total = np.sum(np.where(floored, 0.0, weights), axis=-1, keepdims=True)
            scaled = np.where(floored, min_weight, weights * free_mass / free_total)
            newly = ~floored & (scaled < min_weight)
            if not np.any(newly):
                weights = scaled
                break
            floored |= newly
        else:
            weights = scaled
    return weights


class BetaPosteriors(NamedTuple):
    """Beta(1 + conversions, 1 + non-conversions) posteriors (uniform prior), summarised by
    their means and variances — the normal approximation ``thompson_weights`` takes."""

    means: FloatArray
    variances: FloatArray


def beta_posteriors(units: npt.ArrayLike, conversions: npt.ArrayLike) -> BetaPosteriors:
    """Each arm's posterior of its conversion rate from its ``units`` n and ``conversions``
    c (broadcast): mean m = (c + 1) / (n + 2), variance = m (1 − m) / (n + 3)."""
    n = np.asarray(units, dtype=float)
    c = np.asarray(conversions, dtype=float)
    means = (c + 1) / (n + 2)
    return BetaPosteriors(means, means * (1 - means) / (n + 3))

"""Bayesian A/B analysis with a Gaussian model on the effect (as GrowthBook's gbstats).

The data give an approximately normal likelihood for the effect — absolute δ = ȳ_t − ȳ_c
or relative r = ȳ_t/ȳ_c − 1 with its delta-method variance — and the posterior is normal:

* improper (flat) prior, ``prior_variance=None``: posterior = N(δ̂, v̂);
* proper prior N(μ₀, τ²): precision-weighted, 1/v = 1/v̂ + 1/τ²,  μ = v (δ̂/v̂ + μ₀/τ²).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats.aggregates import FloatArray, SampleStats, as_float
from splitlab.stats.results import (
    N_BELOW_2,
    ZERO_CONTROL_MEAN,
    ZERO_VARIANCE,
    StrArray,
    reason_array,
    reason_codes,
)

_INV_SQRT_2PI = 0.3989422804014327


@dataclass(frozen=True, eq=False)
class BayesianResult:
    """Posterior summary of the effect (relative or absolute, as requested).

    Attributes:
        control_mean, treatment_mean: arm means.
        effect, effect_sd: posterior mean and standard deviation of the effect.
        chance_to_win: P(effect > 0 | data) = Φ(μ/σ).
        risk_control: expected loss of shipping control, E[max(effect, 0)].
        risk_treatment: expected loss of shipping treatment, E[max(−effect, 0)].
            (GrowthBook's ``risk`` is [risk_control, risk_treatment], same units as the effect.)
        ci_low, ci_high: equal-tailed (1 − α) credible interval μ ± z_{1−α/2} σ.
        reason: "" or a reason code.
    """

    control_mean: FloatArray
    treatment_mean: FloatArray
    effect: FloatArray
    effect_sd: FloatArray
    chance_to_win: FloatArray
    risk_control: FloatArray
    risk_treatment: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    reason: StrArray


def bayesian_test(
    control: SampleStats,
    treatment: SampleStats,
    *,
    prior_mean: float | FloatArray = 0.0,
    prior_variance: float | FloatArray | None = None,
    relative: bool = True,
    alpha: float = 0.05,
) -> BayesianResult:
    """Gaussian effect model (GrowthBook ``EffectBayesianABTest``), vectorised.

    Data: δ̂ = ȳ_t/ȳ_c − 1 with v̂ = s_t²/(n_t ȳ_c²) + ȳ_t² s_c²/(n_c ȳ_c⁴) when ``relative``,
    else δ̂ = ȳ_t − ȳ_c with v̂ = s_c²/n_c + s_t²/n_t.  Posterior as in the module docstring;
    ``prior_mean``/``prior_variance`` are on the same (relative or absolute) scale.

    chance_to_win = Φ(μ/σ);  risk_treatment = E[max(0, −X)] = σ φ(μ/σ) − μ Φ(−μ/σ);
    risk_control = E[max(0, X)] = σ φ(μ/σ) + μ Φ(μ/σ).
    Reasons: ``n_below_2``, ``zero_variance``, ``zero_control_mean`` (relative only; all NaN).
    """
    n_c, n_t = control.n, treatment.n
    with np.errstate(divide="ignore", invalid="ignore"):
        m_c, m_t = control.mean, treatment.mean
        v_c = control.variance / n_c
        v_t = treatment.variance / n_t
        if relative:
            inv = 1.0 / m_c
            ratio = m_t * inv
            effect = ratio - 1.0
            variance = inv * inv * (v_t + ratio * ratio * v_c)
        else:
            effect = m_t - m_c
            variance = v_c + v_t
        shape = np.broadcast_shapes(effect.shape, variance.shape)
        codes = reason_codes(
            shape,
            (N_BELOW_2, (n_c < 2) | (n_t < 2)),
            (ZERO_VARIANCE, ~(v_c + v_t > 0)),
            (ZERO_CONTROL_MEAN, (m_c == 0) if relative else False),
        )
        if prior_variance is not None:
            prior_var = as_float(prior_variance)
            precision = 1.0 / variance + 1.0 / prior_var
            effect = (effect / variance + as_float(prior_mean) / prior_var) / precision
            variance = 1.0 / precision
        bad = codes != 0
        mean = np.where(bad, np.nan, effect)
        sd = np.where(bad, np.nan, np.sqrt(variance))
        z = mean / sd
        density = sd * _INV_SQRT_2PI * np.exp(-0.5 * z * z)
        cdf = special.ndtr(z)
        half = special.ndtri(1.0 - alpha / 2.0) * sd
        return BayesianResult(
            control_mean=np.where(bad, np.nan, m_c),
            treatment_mean=np.where(bad, np.nan, m_t),
            effect=mean,
            effect_sd=sd,
            chance_to_win=cdf,
            risk_control=density + mean * cdf,
            risk_treatment=density - mean * (1.0 - cdf),
            ci_low=mean - half,
            ci_high=mean + half,
            reason=reason_array(codes),
        )


def probability_best(
    means: npt.ArrayLike,
    variances: npt.ArrayLike,
    *,
    draws: int = 10_000,
    seed: int | np.random.Generator | None = 0,
) -> FloatArray:
    """P(arm i has the largest value) for independent normal posteriors, arms on the last axis.

    Monte Carlo: P(best)ᵢ = (1/draws) Σ_d 1[argmax_j X_dj = i] with X_dj ~ N(μⱼ, σⱼ²), vectorised
    over all leading axes.  Seeded, so results are reproducible;
    the Monte Carlo standard error is ≤ 0.5/√draws.  Arms with NaN inputs get NaN.
    """
    mu = as_float(means)
    var = as_float(variances)
    mu, var = np.broadcast_arrays(mu, var)
    rng = np.random.default_rng(seed)
    k = mu.shape[-1]
    sd = np.sqrt(np.maximum(var, 0.0))
    valid = np.all(np.isfinite(mu) & np.isfinite(sd), axis=-1, keepdims=True)
    counts = np.zeros(mu.shape, dtype=np.float64)
    chunk = max(1, min(draws, 4_000_000 // max(mu.size, 1)))
    done = 0
    while done < draws:
        size = min(chunk, draws - done)
        noise = rng.standard_normal((size, *mu.shape))
        samples = np.where(valid, mu, 0.0) + np.where(valid, sd, 0.0) * noise
        winners = np.argmax(samples, axis=-1)
        counts += np.sum(winners[..., None] == np.arange(k), axis=0)
        done += size
    return np.where(valid, counts / draws, np.nan)

"""Vectorised Monte Carlo checks of every method in :mod:`splitlab.stats`.

Each check draws ``sims`` independent experiments at once — per-unit values as arrays of shape
sims × units (in chunks that bound memory), or the sufficient statistics directly where their
distribution is exact (binomial counts) — reduces them to the sufficient statistics the
warehouse would return, and makes one vectorised call of the statistics engine.  No Python
loop runs per simulation.  Each check returns :class:`Figure` rows: a measured rate, its Monte
Carlo standard error, and what it should be (the nominal level, or what the power analysis
in :mod:`splitlab.stats.power` predicted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special
from scipy import stats as scipy_stats

from splitlab import stats
from splitlab.stats.aggregates import FloatArray, as_float
from splitlab.stats.relative import RelativeMethod

ALPHA = 0.05
Rule = Literal["equal", "at_most", "at_least", "report"]
_CHUNK_ELEMENTS = 4_000_000
_BAND = 0.005
"""Slack (0.5 points) added to three Monte Carlo standard errors before a figure is 'off'."""


@dataclass(frozen=True)
class Figure:
    """One measured figure of the validity suite.

    Attributes:
        method: the method checked (``welch``, ``bayesian_daily``, …).
        scenario: the simulated data, in words.
        measure: ``false_positive_rate``, ``coverage``, ``power``, ``variance_ratio``, …
        value: the Monte Carlo estimate.
        mc_se: its Monte Carlo standard error.
        target: the nominal level or the predicted value.
        sims: number of simulated experiments.
        rule: ``equal`` (value should match target), ``at_most`` / ``at_least`` (should not
            exceed / fall short of it) or ``report`` (a property of the method stated, not
            judged: the cost of peeking, the power a sequential test gives up).
        note: what the figure means, when it needs saying.
    """

    method: str
    scenario: str
    measure: str
    value: float
    mc_se: float
    target: float
    sims: int
    rule: Rule = "equal"
    note: str = ""

    @property
    def status(self) -> str:
        """``ok`` within 3 Monte Carlo SEs + 0.5 points of the target (or on the right side
        of it for ``at_most`` / ``at_least``), ``off`` otherwise; ``finding`` for ``report``."""
        if self.rule == "report":
            return "finding"
        slack = 3.0 * self.mc_se + _BAND
        if self.rule == "at_most":
            return "ok" if self.value <= self.target + slack else "off"
        if self.rule == "at_least":
            return "ok" if self.value >= self.target - slack else "off"
        return "ok" if abs(self.value - self.target) <= slack else "off"


def rate(
    hits: np.ndarray,
    method: str,
    scenario: str,
    measure: str,
    target: float,
    rule: Rule = "equal",
    note: str = "",
) -> Figure:
    """A proportion of simulations with its binomial Monte Carlo SE √(p(1 − p)/S)."""
    flat = np.asarray(hits, dtype=bool).ravel()
    p = float(np.mean(flat))
    se = math.sqrt(max(p * (1.0 - p), 0.25 / flat.size) / flat.size)
    return Figure(method, scenario, measure, p, se, target, int(flat.size), rule, note)


def covers(low: FloatArray, high: FloatArray, truth: float) -> np.ndarray:
    """True where the interval contains ``truth``; a NaN interval counts as a miss."""
    return np.asarray((low <= truth) & (truth <= high))


def _chunks(sims: int, units: int) -> Iterator[int]:
    """Chunk sizes (simulations per chunk) keeping one sims × units array ≲ 32 MB."""
    size = max(1, _CHUNK_ELEMENTS // max(units, 1))
    done = 0
    while done < sims:
        step = min(size, sims - done)
        yield step
        done += step


def _sample_stats(
    rng: np.random.Generator,
    sims: int,
    units: int,
    draw: Callable[[np.random.Generator, tuple[int, int]], np.ndarray],
) -> stats.SampleStats:
    """Σy, Σy² per simulation of ``units`` per-unit values drawn by ``draw``, chunk by chunk."""
    sums, squares = [], []
    for size in _chunks(sims, units):
        y = draw(rng, (size, units))
        sums.append(y.sum(axis=1))
        squares.append(np.einsum("ij,ij->i", y, y))
    return stats.SampleStats(as_float(units), np.concatenate(sums), np.concatenate(squares))


def _revenue(zero_share: float, sigma: float, scale: float = 1.0) -> Callable[..., np.ndarray]:
    """Revenue per unit: 0 with probability ``zero_share``, else scale · lognormal(0, σ)."""

    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        tail = np.exp(sigma * rng.standard_normal(shape)) * scale
        return np.where(rng.random(shape) < zero_share, 0.0, tail)

    return draw


def _revenue_moments(zero_share: float, sigma: float, scale: float = 1.0) -> tuple[float, float]:
    """Mean and SD of :func:`_revenue` (lognormal moments e^{σ²/2}, e^{2σ²})."""
    keep = 1.0 - zero_share
    mean = keep * scale * math.exp(sigma * sigma / 2.0)
    second = keep * scale * scale * math.exp(2.0 * sigma * sigma)
    return mean, math.sqrt(second - mean * mean)


def _relative_coverages(
    method: str,
    scenario: str,
    control: stats.SampleStats,
    treatment: stats.SampleStats,
    df: FloatArray | None,
    truth: float,
) -> list[Figure]:
    """Coverage of the relative CI by the delta method, Fieller's method and the log ratio."""
    v_c, v_t = control.variance / control.n, treatment.variance / treatment.n
    out = []
    methods: tuple[RelativeMethod, ...] = ("delta", "fieller", "log")
    for name in methods:
        low, high = stats.relative_interval(
            control.mean, treatment.mean, v_c, v_t, method=name, df=df
        )
        out.append(rate(covers(low, high, truth), method, scenario, f"rel_coverage_{name}", 0.95))
    return out


def conversions(n: npt.ArrayLike, successes: npt.ArrayLike) -> stats.SampleStats:
    """Sufficient statistics of a conversion metric: Σy = Σy² = successes."""
    x = as_float(successes)
    return stats.SampleStats(as_float(n), x, x)


def check_ztest(rng: np.random.Generator, sims: int) -> list[Figure]:
    """Two-proportion z-test: conversion 10 %, n per arm from the power analysis for +10 %."""
    base, lift = 0.10, 0.10
    n = float(stats.sample_size_proportions(base, lift, relative=True).n_control)
    scenario = f"conversion 10%, {n:,.0f} units per arm (80% power for +10%)"
    x_c, x_t = rng.binomial(int(n), base, (2, sims))
    aa = stats.ztest_proportions(conversions(n, x_c), conversions(n, x_t))
    out = [
        rate(aa.p_value < ALPHA, "z", scenario, "false_positive_rate", ALPHA),
        rate(covers(aa.abs_ci_low, aa.abs_ci_high, 0.0), "z", scenario, "coverage", 0.95),
        rate(covers(aa.rel_ci_low, aa.rel_ci_high, 0.0), "z", scenario, "rel_coverage", 0.95),
    ]
    p_t = base * (1.0 + lift)
    y_c, y_t = rng.binomial(int(n), base, sims), rng.binomial(int(n), p_t, sims)
    ab = stats.ztest_proportions(conversions(n, y_c), conversions(n, y_t))
    predicted = float(stats.achieved_power(lift, n, baseline=base, relative=True))
    out.append(rate(ab.p_value < ALPHA, "z", scenario, "power", predicted))
    out.append(
        rate(covers(ab.rel_ci_low, ab.rel_ci_high, lift), "z", scenario, "coverage_at_mde", 0.95)
    )
    return out


def _welch_checks(
    rng: np.random.Generator,
    sims: int,
    scenario: str,
    units: int,
    draw: Callable[..., np.ndarray],
    draw_lifted: Callable[..., np.ndarray],
    lift: float,
    sd_pair: tuple[float, float],
    mean: float,
) -> list[Figure]:
    control = _sample_stats(rng, sims, units, draw)
    treatment = _sample_stats(rng, sims, units, draw)
    aa = stats.welch_ttest(control, treatment)
    out = [
        rate(aa.p_value < ALPHA, "welch", scenario, "false_positive_rate", ALPHA),
        rate(covers(aa.abs_ci_low, aa.abs_ci_high, 0.0), "welch", scenario, "coverage", 0.95),
        *_relative_coverages("welch", scenario, control, treatment, aa.df, 0.0),
    ]
    lifted = _sample_stats(rng, sims, units, draw_lifted)
    ab = stats.welch_ttest(control, lifted)
    # At a true effect the three relative intervals differ more than under A/A, where
    # Fieller's covers exactly when the t-test does not reject.
    at_lift = _relative_coverages("welch", scenario, control, lifted, ab.df, lift)
    out += [replace(f, measure=f.measure + "_at_lift") for f in at_lift]
    std = math.sqrt((sd_pair[0] ** 2 + sd_pair[1] ** 2) / 2.0)
    predicted = float(stats.achieved_power(lift * mean, units, std=std))
    out.append(
        rate(
            ab.p_value < ALPHA,
            "welch",
            scenario,
            "power",
            predicted,
            note=f"true lift {lift:+.0%}; prediction from sample_size/achieved_power",
        )
    )
    return out


def check_welch(rng: np.random.Generator, sims: int) -> list[Figure]:
    """Welch's t-test on a light-tailed metric and on heavy-tailed revenue (issue finding 1)."""
    light = "normal metric (mean 10, SD 3), 500 units per arm"

    def normal(shift: float) -> Callable[..., np.ndarray]:
        return lambda g, shape: 10.0 + shift + 3.0 * g.standard_normal(shape)

    out = _welch_checks(rng, sims, light, 500, normal(0.0), normal(0.5), 0.05, (3.0, 3.0), 10.0)
    heavy = "revenue: 60% zeros, lognormal σ = 1.5, 2,000 units per arm"
    mean, sd = _revenue_moments(0.6, 1.5)
    lift = 0.4
    _, sd_lifted = _revenue_moments(0.6, 1.5, 1.0 + lift)
    out += _welch_checks(
        rng,
        sims,
        heavy,
        2000,
        _revenue(0.6, 1.5),
        _revenue(0.6, 1.5, 1.0 + lift),
        lift,
        (sd, sd_lifted),
        mean,
    )
    return out


def check_cuped(rng: np.random.Generator, sims: int, rho: float = 0.7) -> list[Figure]:
    """CUPED on a metric correlated ρ with its pre-period value: FPR, coverage, variance
    ratio against 1 − ρ², and power against ``sample_size_means(variance_reduction=ρ²)``."""
    sd, mean, lift = 4.0, 10.0, 0.03
    n = int(stats.sample_size_means(sd, lift * mean, variance_reduction=rho * rho).n_control)
    scenario = f"normal metric (mean 10, SD 4), pre-period ρ = {rho}, {n:,} units per arm"

    def arm(shift: float) -> stats.CovariateStats:
        parts = []
        for size in _chunks(sims, n):
            x = rng.standard_normal((size, n))
            y = (
                mean
                + shift
                + sd * (rho * x + math.sqrt(1 - rho * rho) * rng.standard_normal(x.shape))
            )
            parts.append(stats.CovariateStats.from_values(y, 5.0 + x))
        return stats.CovariateStats(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _COVARIATE_FIELDS)
        )

    control, treatment = arm(0.0), arm(0.0)
    aa = stats.cuped_test(control, treatment)
    raw = stats.welch_ttest(control.y, treatment.y)
    out = [
        rate(aa.p_value < ALPHA, "cuped", scenario, "false_positive_rate", ALPHA),
        rate(covers(aa.abs_ci_low, aa.abs_ci_high, 0.0), "cuped", scenario, "coverage", 0.95),
        rate(covers(aa.rel_ci_low, aa.rel_ci_high, 0.0), "cuped", scenario, "rel_coverage", 0.95),
    ]
    adjusted, unadjusted = aa.abs_effect, raw.abs_effect
    ratio = float(np.var(adjusted) / np.var(unadjusted))
    corr = float(np.corrcoef(adjusted, unadjusted)[0, 1])
    ratio_se = ratio * 2.0 * math.sqrt(max(1.0 - corr * corr, 0.0) / sims)
    out.append(
        Figure(
            "cuped",
            scenario,
            "variance_ratio",
            ratio,
            ratio_se,
            1.0 - rho * rho,
            sims,
            note="Var(CUPED effect) / Var(unadjusted effect) across simulations vs 1 − ρ²",
        )
    )
    reported = np.asarray(aa.variance_reduction)
    out.append(
        Figure(
            "cuped",
            scenario,
            "reported_variance_reduction",
            float(np.mean(reported)),
            float(np.std(reported) / math.sqrt(sims)),
            rho * rho,
            sims,
            note="mean of the variance_reduction field vs ρ²",
        )
    )
    lifted = arm(lift * mean)
    ab = stats.cuped_test(control, lifted)
    predicted = float(stats.achieved_power(lift * mean, n, std=sd, variance_reduction=rho * rho))
    out.append(rate(ab.p_value < ALPHA, "cuped", scenario, "power", predicted))
    return out


_COVARIATE_FIELDS = ("n", "sum_y", "sum_y_sq", "sum_x", "sum_x_sq", "sum_xy")
_RATIO_FIELDS = ("n", "sum_num", "sum_num_sq", "sum_den", "sum_den_sq", "sum_num_den")


def _ratio_arm(rng: np.random.Generator, sims: int, units: int, scale: float) -> stats.RatioStats:
    """Revenue per session: sessions 1 + Poisson(2); each session buys with probability 0.2,
    for an exponential(``scale``) order value.

    Drawn by Poisson thinning (the buying sessions are Bernoulli(0.2) + Poisson(0.4), the
    others Bernoulli(0.8) + Poisson(1.6), independent), and a unit's revenue, the sum of k
    exponentials, as Gamma(k, scale) drawn only where k > 0.
    """
    parts = []
    for size in _chunks(sims, units):
        first = rng.random((size, units)) < 0.2
        buying = first + rng.poisson(0.4, (size, units))
        sessions = 1.0 + buying - first + rng.poisson(1.6, (size, units))
        revenue = np.zeros((size, units))
        bought = buying > 0
        revenue[bought] = rng.gamma(buying[bought], scale)
        parts.append(stats.RatioStats.from_values(revenue, sessions))
    return stats.RatioStats(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in _RATIO_FIELDS)
    )


def check_ratio(rng: np.random.Generator, sims: int) -> list[Figure]:
    """Delta-method ratio test on revenue per session (2,000 users per arm)."""
    units, lift = 2000, 0.15
    scenario = "revenue per session (sessions 1 + Poisson(2), 20% buy, $5 mean), 2,000 users/arm"
    control, treatment = (_ratio_arm(rng, sims, units, 5.0) for _ in range(2))
    aa = stats.ratio_test(control, treatment)
    out = [
        rate(aa.p_value < ALPHA, "ratio", scenario, "false_positive_rate", ALPHA),
        rate(covers(aa.abs_ci_low, aa.abs_ci_high, 0.0), "ratio", scenario, "coverage", 0.95),
        rate(covers(aa.rel_ci_low, aa.rel_ci_high, 0.0), "ratio", scenario, "rel_coverage", 0.95),
    ]
    lifted = _ratio_arm(rng, sims, units, 5.0 * (1.0 + lift))
    ab = stats.ratio_test(control, lifted)
    # The power analysis as a user runs it: per-unit delta-method SDs from a large pilot.
    pilot = _ratio_arm(rng, 1, 200_000, 5.0)
    pilot_lifted = _ratio_arm(rng, 1, 200_000, 5.0 * (1.0 + lift))
    std = math.sqrt((float(pilot.variance[0]) + float(pilot_lifted.variance[0])) / 2.0)
    truth = 0.2 * 5.0
    predicted = float(stats.achieved_power(lift * truth, units, std=std))
    out.append(rate(ab.p_value < ALPHA, "ratio", scenario, "power", predicted))
    out.append(
        rate(
            covers(ab.rel_ci_low, ab.rel_ci_high, lift), "ratio", scenario, "coverage_at_mde", 0.95
        )
    )
    return out


def _quantile_arm(
    rng: np.random.Generator, sims: int, units: int, scale: float
) -> stats.QuantileStats:
    parts = [
        stats.QuantileStats.from_values(
            scale * np.exp(5.0 + 0.5 * rng.standard_normal((s, units))), 0.9
        )
        for s in _chunks(sims, units)
    ]
    n, estimate, lower, upper = (
        np.concatenate([getattr(p, f) for p in parts]) for f in ("n", "estimate", "lower", "upper")
    )
    return stats.QuantileStats(n, estimate, lower, upper)


def check_quantile(rng: np.random.Generator, sims: int) -> list[Figure]:
    """p90 latency (lognormal, median 148 ms, σ = 0.5), 2,000 units per arm."""
    units, lift, q = 2000, 0.05, 0.9
    scenario = "p90 of latency (lognormal e^5 ms, σ = 0.5), 2,000 units per arm"
    control, treatment = (_quantile_arm(rng, sims, units, 1.0) for _ in range(2))
    aa = stats.quantile_test(control, treatment)
    out = [
        rate(aa.p_value < ALPHA, "quantile", scenario, "false_positive_rate", ALPHA),
        rate(covers(aa.abs_ci_low, aa.abs_ci_high, 0.0), "quantile", scenario, "coverage", 0.95),
    ]
    lifted = _quantile_arm(rng, sims, units, 1.0 + lift)
    ab = stats.quantile_test(control, lifted)
    # Asymptotic SD of a sample quantile: √(q(1 − q)) / f(ξ_q), f the density at ξ_q.
    z = float(special.ndtri(q))
    xi = math.exp(5.0 + 0.5 * z)
    sds = [
        math.sqrt(q * (1 - q)) / (scipy_stats.norm.pdf(z) / (0.5 * x))
        for x in (xi, xi * (1 + lift))
    ]
    std = math.sqrt((sds[0] ** 2 + sds[1] ** 2) / 2.0)
    predicted = float(stats.achieved_power(lift * xi, units, std=std))
    out.append(rate(ab.p_value < ALPHA, "quantile", scenario, "power", predicted))
    out.append(
        rate(
            covers(ab.abs_ci_low, ab.abs_ci_high, lift * xi),
            "quantile",
            scenario,
            "coverage_at_mde",
            0.95,
        )
    )
    return out

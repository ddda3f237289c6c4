"""Vectorised Monte Carlo checks of the methods read repeatedly: sequential tests, the
Bayesian "chance to win" rule with and without daily peeking, Wald's SPRT and the SRM check.

Daily data are simulated as per-day binomial counts per arm (the exact distribution of the
sufficient statistics of a conversion metric), shape sims × days, and accumulated with
``cumsum`` so every day's cumulative analysis runs in one vectorised call.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from splitlab import stats
from splitlab.simulate.validity_sims import ALPHA, Figure, conversions, covers, rate

DAYS = 14
DAILY_UNITS = 500
BASE_RATE = 0.10
BAYES_THRESHOLD = 0.95


def _daily_arm(rng: np.random.Generator, sims: int, rate: float) -> stats.SampleStats:
    """Cumulative conversion counts of one arm after each day: shape sims × DAYS."""
    successes = np.cumsum(rng.binomial(DAILY_UNITS, rate, (sims, DAYS)), axis=1)
    n = np.cumsum(np.full(DAYS, float(DAILY_UNITS)))
    return conversions(n, successes)


def _scenario() -> str:
    return (
        f"conversion {BASE_RATE:.0%}, {DAILY_UNITS} units per arm per day, "
        f"read daily for {DAYS} days"
    )


def _final_n() -> float:
    return float(DAYS * DAILY_UNITS)


def _planned_lift() -> float:
    """The relative effect a fixed-horizon test of the final sample detects with 80 % power."""
    return float(stats.mde_for_sample_size(_final_n(), baseline=BASE_RATE, relative=True))


def check_sequential(rng: np.random.Generator, sims: int) -> list[Figure]:
    """Always-valid confidence sequence read every day, against daily peeking at a z-test."""
    scenario = _scenario()
    control, treatment = _daily_arm(rng, sims, BASE_RATE), _daily_arm(rng, sims, BASE_RATE)
    seq = stats.sequential_test(control, treatment, alpha=ALPHA)
    naive = stats.ztest_proportions(control, treatment, alpha=ALPHA)
    out = [
        rate(
            np.any(seq.p_value < ALPHA, axis=1),
            "sequential",
            scenario,
            "false_positive_rate",
            ALPHA,
            "at_most",
            "rejects on any of the 14 days",
        ),
        rate(
            np.any(naive.p_value < ALPHA, axis=1),
            "z_daily_peeking",
            scenario,
            "false_positive_rate",
            ALPHA,
            "report",
            "a fixed-horizon z-test read daily and stopped at the first p < 0.05: "
            "why sequential testing exists",
        ),
    ]
    lift = _planned_lift()
    lifted = _daily_arm(rng, sims, BASE_RATE * (1.0 + lift))
    seq_ab = stats.sequential_test(control, lifted, alpha=ALPHA)
    truth = BASE_RATE * lift
    out += [
        rate(
            np.all(covers(seq_ab.abs_ci_low, seq_ab.abs_ci_high, truth), axis=1),
            "sequential",
            scenario,
            "coverage_all_days",
            0.95,
            "at_least",
            "the confidence sequence covers the true effect on every day at once",
        ),
        rate(
            np.any(seq_ab.p_value < ALPHA, axis=1),
            "sequential",
            scenario,
            "power",
            0.8,
            "report",
            f"true lift {lift:+.1%}, the 80%-power MDE of a fixed-horizon test of "
            f"{_final_n():,.0f} units per arm; always-valid inference pays for peeking in power",
        ),
    ]
    return out


def check_msprt(rng: np.random.Generator, sims: int) -> list[Figure]:
    """Mixture SPRT p-value (mixture variance τ² = the planned effect²) read every day."""
    scenario = _scenario()
    lift = _planned_lift()
    tau2 = (BASE_RATE * lift) ** 2
    control, treatment = _daily_arm(rng, sims, BASE_RATE), _daily_arm(rng, sims, BASE_RATE)
    p_aa, _ = stats.msprt_pvalue(control, treatment, mixture_variance=tau2, axis=-1)
    lifted = _daily_arm(rng, sims, BASE_RATE * (1.0 + lift))
    p_ab, _ = stats.msprt_pvalue(control, lifted, mixture_variance=tau2, axis=-1)
    return [
        rate(
            p_aa[:, -1] < ALPHA,
            "msprt",
            scenario,
            "false_positive_rate",
            ALPHA,
            "at_most",
            "always-valid p-value below 0.05 on any day",
        ),
        rate(
            p_ab[:, -1] < ALPHA,
            "msprt",
            scenario,
            "power",
            0.8,
            "report",
            f"true lift {lift:+.1%} (the fixed-horizon 80%-power MDE); τ = that effect",
        ),
    ]


def check_sprt(rng: np.random.Generator, sims: int) -> list[Figure]:
    """Wald's SPRT for a conversion rate, H0 p = 10 % vs H1 p = 11 %, checked every 250 units
    of the treatment arm, truncated at 50,000."""
    p0, p1, beta, step, steps = 0.10, 0.11, 0.2, 250, 200
    scenario = (
        f"conversion H0 {p0:.0%} vs H1 {p1:.0%}, checked every {step} units, ≤ {step * steps:,}"
    )
    n = np.cumsum(np.full(steps, float(step)))

    def run(rate: float) -> stats.SprtResult:
        x_a = np.cumsum(rng.binomial(step, p0, (sims, steps)), axis=1)
        x_b = np.cumsum(rng.binomial(step, rate, (sims, steps)), axis=1)
        return stats.sprt_bernoulli(x_a, n, x_b, n, p0=p0, p1=p1, alpha=ALPHA, beta=beta)

    null, alt = run(p0), run(p1)
    undecided = float(np.mean(alt.final == "continue"))
    stopped = alt.stopped_at[alt.stopped_at >= 0]
    median_units = float(np.median((stopped + 1) * step)) if stopped.size else math.nan
    return [
        rate(null.final == "reject_h0", "sprt", scenario, "false_positive_rate", ALPHA, "at_most"),
        rate(
            alt.final == "reject_h0",
            "sprt",
            scenario,
            "power",
            1.0 - beta,
            "at_least",
            f"Wald's design power 1 − β; median stop at {median_units:,.0f} treatment units, "
            f"{undecided:.1%} undecided at the cap",
        ),
    ]


def check_bayesian(rng: np.random.Generator, sims: int) -> list[Figure]:
    """The rule "chance to win > 95 % (or < 5 %)", read once at day 14 and read daily."""
    scenario = _scenario()
    control, treatment = _daily_arm(rng, sims, BASE_RATE), _daily_arm(rng, sims, BASE_RATE)
    aa = stats.bayesian_test(control, treatment, relative=True, alpha=ALPHA)
    decided = (aa.chance_to_win > BAYES_THRESHOLD) | (aa.chance_to_win < 1.0 - BAYES_THRESHOLD)
    out = [
        rate(
            decided[:, -1],
            "bayesian_final",
            scenario,
            "false_positive_rate",
            2.0 * (1.0 - BAYES_THRESHOLD),
            "equal",
            "one look at the planned horizon: the rule is a two-sided 10% test",
        ),
        rate(
            np.any(decided, axis=1),
            "bayesian_daily",
            scenario,
            "false_positive_rate",
            2.0 * (1.0 - BAYES_THRESHOLD),
            "report",
            "the same rule read every day and acted on at the first crossing: a Bayesian "
            "result read before its planned horizon is not protected against peeking",
        ),
        rate(
            covers(aa.ci_low[:, -1], aa.ci_high[:, -1], 0.0),
            "bayesian_final",
            scenario,
            "coverage",
            0.95,
            note="95% credible interval of the relative effect (flat prior)",
        ),
    ]
    lift = _planned_lift()
    lifted = _daily_arm(rng, sims, BASE_RATE * (1.0 + lift))
    ab = stats.bayesian_test(control, lifted, relative=True, alpha=ALPHA)
    predicted = float(
        stats.achieved_power(
            lift, _final_n(), baseline=BASE_RATE, relative=True, alpha=2 * (1 - BAYES_THRESHOLD)
        )
    )
    out.append(
        rate(
            (ab.chance_to_win[:, -1] > BAYES_THRESHOLD) | (ab.chance_to_win[:, -1] < 0.05),
            "bayesian_final",
            scenario,
            "power",
            predicted,
            note=f"true lift {lift:+.1%}; predicted as a two-sided 10% test",
        )
    )
    return out


def check_srm(rng: np.random.Generator, sims: int) -> list[Figure]:
    """χ² SRM check (p < 0.001) on a 50/50 split of 100,000 units, intact and with one arm
    losing 3 % of its units (the ``srm_invalid`` scenario)."""
    total, loss = 100_000, 0.03
    scenario = f"50/50 split of {total:,} units; broken: treatment loses {loss:.0%} of its units"
    weights = np.array([0.5, 0.5])
    n_t = rng.binomial(total, 0.5, sims)
    intact = stats.srm_test(np.stack([total - n_t, n_t], axis=1), weights)
    n_t2 = rng.binomial(total, 0.5, sims)
    kept = rng.binomial(n_t2, 1.0 - loss)
    broken = stats.srm_test(np.stack([total - n_t2, kept], axis=1), weights)
    # Power of the χ² test by its noncentral χ² distribution, λ = N Σ (πᵢ − wᵢ)² / wᵢ.
    shares = np.array([0.5, 0.5 * (1 - loss)])
    expected_total = float(shares.sum() * total)
    shares /= shares.sum()
    lam = expected_total * float(np.sum((shares - weights) ** 2 / weights))
    critical = scipy_stats.chi2.isf(stats.SRM_P_THRESHOLD, 1)
    predicted = float(scipy_stats.ncx2.sf(critical, 1, lam))
    return [
        rate(intact.detected, "srm", scenario, "false_positive_rate", stats.SRM_P_THRESHOLD),
        rate(broken.detected, "srm", scenario, "power", predicted, note="noncentral χ² prediction"),
    ]

"""Sequential testing: Wald's SPRT, always-valid confidence sequences and mixture SPRT.

Results may be inspected after every batch of data (daily, hourly) without inflating the
false-positive rate, unlike repeated fixed-horizon tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats._inference import effect_test
from splitlab.stats.aggregates import FloatArray, SampleStats, as_float
from splitlab.stats.frequentist import mean_codes, welch_ttest
from splitlab.stats.results import StrArray, TestResult

REJECT_H0 = "reject_h0"
ACCEPT_H0 = "accept_h0"
CONTINUE = "continue"


@dataclass(frozen=True, eq=False)
class SprtResult:
    """Wald SPRT trajectory; steps are on the last axis.

    Attributes:
        llr: cumulative log-likelihood ratio log Λ after each step.
        upper: boundary A = log((1 − β)/α); llr ≥ A rejects H0.
        lower: boundary B = log(β/(1 − α)); llr ≤ B accepts H0.
        decision: per step ``"reject_h0"``, ``"accept_h0"`` or ``"continue"``.
        stopped_at: index of the first step that crossed a boundary (−1 if none).
        final: decision at the first crossing (``"continue"`` if none) — the SPRT stops there.
    """

    llr: FloatArray
    upper: float
    lower: float
    decision: StrArray
    stopped_at: npt.NDArray[np.int64]
    final: StrArray


def sprt_bernoulli(
    successes_a: npt.ArrayLike,
    n_a: npt.ArrayLike,
    successes_b: npt.ArrayLike,
    n_b: npt.ArrayLike,
    *,
    p0: float,
    p1: float,
    alpha: float = 0.05,
    beta: float = 0.2,
) -> SprtResult:
    """Wald's sequential probability ratio test for a conversion rate, cumulative counts per step.

    Hypotheses: H0 — both arms convert at p0; H1 — control (a) converts at p0, treatment (b)
    at p1.  The control arm has the same likelihood under both, so it cancels and

        log Λ = x_b log(p1/p0) + (n_b − x_b) log((1 − p1)/(1 − p0)),

    with x_b, n_b cumulative.  The control counts are only validated (x outside [0, n] in either
    arm gives a NaN llr): with p0 fixed they carry no information about H0 vs H1.  Check that
    the control really converts near p0 with a two-arm test.
    Decision per step: reject H0 if log Λ ≥ A = log((1 − β)/α), accept if ≤ B = log(β/(1 − α)).
    """
    if not (0 < p0 < 1 and 0 < p1 < 1 and p0 != p1):
        raise ValueError("p0 and p1 must be distinct probabilities in (0, 1)")
    x_a, m_a, x_b, m_b = np.broadcast_arrays(
        as_float(successes_a), as_float(n_a), as_float(successes_b), as_float(n_b)
    )
    invalid = (x_a < 0) | (x_a > m_a) | (x_b < 0) | (x_b > m_b)
    llr = x_b * np.log(p1 / p0) + (m_b - x_b) * np.log((1.0 - p1) / (1.0 - p0))
    llr = np.where(invalid, np.nan, llr)
    upper = float(np.log((1.0 - beta) / alpha))
    lower = float(np.log(beta / (1.0 - alpha)))
    codes = np.where(llr >= upper, 1, np.where(llr <= lower, 2, 0))
    labels = np.array([CONTINUE, REJECT_H0, ACCEPT_H0])
    crossed = codes != 0
    any_cross = np.any(crossed, axis=-1)
    first = np.where(any_cross, np.argmax(crossed, axis=-1), -1)
    final_code = np.where(
        any_cross, np.take_along_axis(codes, np.maximum(first, 0)[..., None], -1)[..., 0], 0
    )
    return SprtResult(llr, upper, lower, labels[codes], first.astype(np.int64), labels[final_code])


def cs_rho_squared(alpha: float, tuning: float) -> float:
    """ρ² = (−2 log α + log(−2 log α + 1)) / N*: the mixture that makes the confidence
    sequence tightest at N* = ``tuning`` total units (Waudby-Smith et al. 2021)."""
    log_term = -2.0 * np.log(alpha)
    return float((log_term + np.log(log_term + 1.0)) / tuning)


def cs_halfwidth_factor(n_total: FloatArray, alpha: float, tuning: float) -> FloatArray:
    """Multiplier k such that the CS half-width is k · SE(δ̂):

    half-width = σ √(2(Nρ² + 1)/(N²ρ²) · log(√(Nρ² + 1)/α)) with σ² = N·SE², hence
    k = √(2(Nρ² + 1)/(Nρ²) · log(√(Nρ² + 1)/α)).
    """
    rho2 = cs_rho_squared(alpha, tuning)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = n_total * rho2
        return np.sqrt(2.0 * (a + 1.0) / a * np.log(np.sqrt(a + 1.0) / alpha))


def sequential_test(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alpha: float = 0.05,
    tuning: float = 5000.0,
) -> TestResult:
    """Two-sided always-valid test: asymptotic confidence sequence of Waudby-Smith et al. (2021),
    as GrowthBook's ``SequentialTwoSidedTTest``.

    With N = n_c + n_t, SE² = s_c²/n_c + s_t²/n_t, ρ² from :func:`cs_rho_squared`:

        CS = δ̂ ± SE · √(2(Nρ² + 1)/(Nρ²) · log(√(Nρ² + 1)/α))

    covers the true effect at all N simultaneously with probability ≥ 1 − α (asymptotically),
    so it may be checked after every day.  The relative CS uses the delta-method SE with the
    same multiplier.  ``p_value`` is the always-valid p-value with ρ fixed as above,

        p = min(1, √(Nρ² + 1) · exp(−z² Nρ² / (2(Nρ² + 1)))),   z = δ̂/SE,

    the smallest α′ whose CS (same ρ) excludes 0 — so p ≤ α exactly when the CS excludes 0.  It
    equals :func:`msprt_pvalue` with mixture variance τ² = ρ² N SE².  ``statistic`` is z;
    ``df`` NaN.  Reasons as :func:`splitlab.stats.welch_ttest`.
    """
    n_c, n_t = control.n, treatment.n
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v_c = control.variance / n_c
        v_t = treatment.variance / n_t
        m_c, m_t = control.mean, treatment.mean
        codes = mean_codes(m_c, m_t, v_c, v_t, n_c, n_t)
        n_total = n_c + n_t
        factor = cs_halfwidth_factor(n_total, alpha, tuning)
        # effect_test gives the fixed-horizon z interval δ̂ ± z_{1−α/2}·SE; rescale its
        # half-widths by factor / z_{1−α/2} to get the confidence sequence.
        base = effect_test(m_c, m_t, v_c, v_t, codes, alpha=alpha, alternative="two-sided")
        z = base.statistic
        a = n_total * cs_rho_squared(alpha, tuning)
        p_value = np.minimum(1.0, np.sqrt(a + 1.0) * np.exp(-z * z * a / (2.0 * (a + 1.0))))
        crit = float(special.ndtri(1.0 - alpha / 2.0))
        scale = factor / crit
        abs_half = (base.abs_ci_high - base.abs_effect) * scale
        rel_half = (base.rel_ci_high - base.rel_effect) * scale
        return TestResult(
            control_mean=base.control_mean,
            treatment_mean=base.treatment_mean,
            abs_effect=base.abs_effect,
            abs_ci_low=base.abs_effect - abs_half,
            abs_ci_high=base.abs_effect + abs_half,
            rel_effect=base.rel_effect,
            rel_ci_low=base.rel_effect - rel_half,
            rel_ci_high=base.rel_effect + rel_half,
            statistic=z,
            p_value=np.where(np.isnan(z), np.nan, p_value),
            df=base.df,
            reason=base.reason,
        )


def msprt_pvalue(
    control: SampleStats,
    treatment: SampleStats,
    *,
    mixture_variance: float | FloatArray,
    axis: int | None = None,
) -> tuple[FloatArray, StrArray]:
    """Always-valid p-value of the mixture SPRT (Johari, Pekelis & Walsh 2017), normal data.

    With δ̂ = ȳ_t − ȳ_c, V = s_c²/n_c + s_t²/n_t and a N(0, τ²) mixture over the effect,

        Λ = √(V/(V + τ²)) · exp(τ² δ̂² / (2V(V + τ²))),    p = min(1, 1/Λ).

    If ``axis`` is given the inputs are cumulative statistics at successive looks along that
    axis and p is made monotone by a running minimum (pₙ = min_{k ≤ n} 1/Λₖ), the formal
    always-valid p-value.  Returns ``(p_value, reason)``.
    """
    welch = welch_ttest(control, treatment)
    tau2 = as_float(mixture_variance)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = control.variance / control.n + treatment.variance / treatment.n
        delta = welch.abs_effect
        log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * delta * delta / (2.0 * v * (v + tau2))
        p = np.minimum(1.0, np.exp(-log_lambda))
    if axis is not None:
        p = np.fmin.accumulate(p, axis=axis)
    return p, welch.reason

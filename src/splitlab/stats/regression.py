"""Multivariate CUPED: regression adjustment on several covariates, from sufficient statistics.

Each arm brings n, Σy, Σy², Σz (k covariates), Σzzᵀ and Σzy — per cell, so a warehouse pass
that sums cross-products per variant × cell is all the input.  The treatment effect is the
treatment coefficient of the ordinary least squares fit on both arms' units

    y = a + δ·T + βᵀ(z − z̄) + ε,

computed without the units: with per-arm centred cross-products S_zz,a, S_zy,a and S_yy,a,
W = S_zz,c + S_zz,t (the within-arm covariance, summed) and d = z̄_t − z̄_c,

    β = W⁺ (S_zy,c + S_zy,t),     δ = (ȳ_t − ȳ_c) − βᵀd,
    σ² = (S_yy,c + S_yy,t − βᵀ(S_zy,c + S_zy,t)) / (n_c + n_t − 2 − k),
    Var(δ) = σ² (1/n_c + 1/n_t + dᵀW⁺d),

the classical OLS standard error (statsmodels ``OLS(y, [1, T, z − z̄]).fit()``: the same
coefficient, SE, t and residual degrees of freedom n_c + n_t − 2 − rank(W)).  W⁺ is the
pseudo-inverse, so a covariate constant or collinear within the arms is dropped as OLS's pinv
drops it.  Every array broadcasts over leading axes (metrics × cells ×
treatments); the k axes come last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from splitlab.stats._inference import effect_test
from splitlab.stats.aggregates import FloatArray, as_float, sample_variance
from splitlab.stats.results import N_BELOW_2, ZERO_VARIANCE, Alternative, TestResult, reason_codes


@dataclass(frozen=True, eq=False)
class RegressionStats:
    """One arm's outcome y with k covariates z: ``n`` (shape S), ``sum_y``, ``sum_y_sq`` (S),
    ``sum_z`` (S + (k,)), ``sum_zz`` (S + (k, k)), ``sum_zy`` (S + (k,))."""

    n: FloatArray
    sum_y: FloatArray
    sum_y_sq: FloatArray
    sum_z: FloatArray
    sum_zz: FloatArray
    sum_zy: FloatArray

    def __post_init__(self) -> None:
        for name in ("n", "sum_y", "sum_y_sq", "sum_z", "sum_zz", "sum_zy"):
            object.__setattr__(self, name, as_float(getattr(self, name)))

    @classmethod
    def from_values(cls, y: FloatArray, z: FloatArray) -> RegressionStats:
        """From per-unit values: ``y`` (units,) and ``z`` (units, k) — for tests and examples."""
        y, z = as_float(y), as_float(z)
        return cls(
            as_float(y.size),
            as_float(y.sum()),
            as_float((y * y).sum()),
            z.sum(axis=0),
            z.T @ z,
            z.T @ y,
        )


@dataclass(frozen=True, eq=False)
class RegressionResult(TestResult):
    """:class:`TestResult` of the regression-adjusted comparison, plus:

    ``beta`` (… , k): the pooled within-arm coefficients; ``variance_reduction``:
    1 − Var(δ) / Var(raw difference) (the raw one Welch's: s²_c/n_c + s²_t/n_t);
    ``control_var`` / ``treatment_var``: each arm's share of Var(δ) (σ²(1/nᵢ + dᵀW⁺d·n_other/N),
    summing to Var(δ)), for the engines that work on per-arm variances."""

    beta: FloatArray
    variance_reduction: FloatArray
    control_var: FloatArray
    treatment_var: FloatArray


_RCOND = 1e-12
"""Eigenvalues of W below this fraction of the largest count as zero (a covariate constant or
collinear within the arms; relative 1e-6 on the singular values of the centred covariates)."""


def _pseudo_inverse(w: FloatArray) -> tuple[FloatArray, FloatArray]:
    """W⁺ and the rank of each symmetric positive semi-definite k × k matrix of a stack (one
    eigendecomposition each; non-finite matrices get W⁺ = 0 and rank k)."""
    k = w.shape[-1]
    finite = np.isfinite(w).all(axis=(-2, -1))
    inverse = np.zeros_like(w)
    rank = np.full(w.shape[:-2], float(k))
    if finite.any():
        values, vectors = np.linalg.eigh(w[finite])
        top = np.max(np.abs(values), axis=-1, keepdims=True)
        kept = values > _RCOND * top
        scale = np.where(kept, 1.0 / np.where(kept, values, 1.0), 0.0)
        inverse[finite] = np.einsum("...ik,...k,...jk->...ij", vectors, scale, vectors)
        rank[finite] = kept.sum(axis=-1)
    return inverse, rank


def _centred(n: FloatArray, sum_a: FloatArray, sum_b: FloatArray, sum_ab: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return sum_ab - sum_a * sum_b / n


def regression_test(
    control: RegressionStats,
    treatment: RegressionStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> RegressionResult:
    """Regression-adjusted two-arm comparison (see the module docstring):

        δ = (ȳ_t − ȳ_c) − βᵀd,   Var(δ) = σ² (1/n_c + 1/n_t + dᵀW⁺d),   t = δ / √Var(δ),

    t reference with n_c + n_t − 2 − rank(W) degrees of freedom.  The adjusted arm means are
    ȳᵢ − βᵀ(z̄ᵢ − z̄) with z̄ the pooled covariate mean; their difference is δ.
    Reasons: ``n_below_2`` (an arm under two units, or no residual degree of freedom),
    ``zero_variance`` (no residual variance), ``zero_control_mean`` (relative fields only)."""
    c, t = control, treatment
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        zbar_c = c.sum_z / c.n[..., None]
        zbar_t = t.sum_z / t.n[..., None]
        outer = np.einsum

        def within(arm: RegressionStats) -> tuple[FloatArray, FloatArray, FloatArray]:
            szz = (
                arm.sum_zz
                - outer("...i,...j->...ij", arm.sum_z, arm.sum_z) / arm.n[..., None, None]
            )
            szy = arm.sum_zy - arm.sum_z * (arm.sum_y / arm.n)[..., None]
            syy = _centred(arm.n, arm.sum_y, arm.sum_y, arm.sum_y_sq)
            return szz, szy, syy

        szz_c, szy_c, syy_c = within(c)
        szz_t, szy_t, syy_t = within(t)
        w = szz_c + szz_t
        szy = szy_c + szy_t
        w_inv, rank = _pseudo_inverse(w)
        beta = np.einsum("...ij,...j->...i", w_inv, szy)
        d = zbar_t - zbar_c
        n_total = c.n + t.n
        zbar = (c.sum_z + t.sum_z) / n_total[..., None]
        adj_c = c.sum_y / c.n - np.einsum("...i,...i->...", beta, zbar_c - zbar)
        adj_t = t.sum_y / t.n - np.einsum("...i,...i->...", beta, zbar_t - zbar)
        rss = syy_c + syy_t - np.einsum("...i,...i->...", beta, szy)
        total_yy = syy_c + syy_t
        rss = np.where(np.abs(rss) <= 1e-12 * np.abs(total_yy), 0.0, np.maximum(rss, 0.0))
        df = n_total - 2.0 - rank
        sigma2 = rss / df
        q = np.einsum("...i,...ij,...j->...", d, w_inv, d)
        v_c = sigma2 * (1.0 / c.n + q * t.n / n_total)
        v_t = sigma2 * (1.0 / t.n + q * c.n / n_total)
        raw = sample_variance(c.n, c.sum_y, c.sum_y_sq) / c.n + (
            sample_variance(t.n, t.sum_y, t.sum_y_sq) / t.n
        )
        shape = np.broadcast_shapes(adj_c.shape, adj_t.shape)
        codes = reason_codes(
            shape,
            (N_BELOW_2, (c.n < 2) | (t.n < 2) | ~(df >= 1)),
            (ZERO_VARIANCE, ~(v_c + v_t > 0)),
        )
        base = effect_test(
            adj_c, adj_t, v_c, v_t, codes, alpha=alpha, alternative=alternative, df=df
        )
        bad = codes != 0
        return RegressionResult(
            **vars(base),
            beta=np.where(bad[..., None], np.nan, beta),
            variance_reduction=np.where(bad, np.nan, 1.0 - (v_c + v_t) / raw),
            control_var=v_c,
            treatment_var=v_t,
        )

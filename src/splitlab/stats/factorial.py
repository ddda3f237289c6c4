"""Factorial designs and interactions from per-cell sufficient statistics.

A *cell* is one combination of factor levels (a variant of a 2^k factorial experiment, or one
(arm of A, arm of B) pair of two experiments that share units).  With each cell's n, Σy and
Σy², the saturated linear model ``y ~ cells`` is known exactly: its fitted values are the cell
means ȳ_c and its residual sum of squares is Σ_c (Σy² − (Σy)²/n)_c.  Any linear contrast
θ = Σ_c L_c ȳ_c of the cell means is then an OLS estimate with

    Var(θ̂) = σ̂² Σ_c L_c² / n_c,  σ̂² = SS_resid / (N − C)   (classical, t with N − C df), or
    Var(θ̂) = Σ_c L_c² s_c² / n_c                               (HC2-robust, normal reference),

which are what statsmodels' OLS reports for the same contrast (HC2: ``cov_type="HC2"``, whose
leverage in a saturated cell model is 1/n_c, so its per-cell residual variance is s_c²).

* :func:`factorial_anova` — a 2^k design: every main effect and interaction with the
  ANOVA table (Type III sums of squares under sum-to-zero coding, F = t²);
* :func:`arm_interactions` — two experiments: A's effect within each arm of B and the
  difference of those effects (the interaction), with the omnibus F for "no interaction".

Effects follow the design-of-experiments convention (Montgomery): a main effect is the mean
at the factor's high level minus the mean at its low level, averaged with equal weight over
the other factors' levels; the AB interaction is half the difference between A's effect at B
high and at B low.  Under ±1 (sum-to-zero) coding the regression coefficient is effect / 2.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from splitlab.stats.aggregates import FloatArray, SampleStats, as_float
from splitlab.stats.results import N_BELOW_2, ZERO_VARIANCE, StrArray, reason_array, reason_codes

MAX_FACTORS = 6
"""A 2^6 = 64-cell design is the largest accepted (each cell needs its own traffic)."""


@dataclass(frozen=True, eq=False)
class ContrastResult:
    """Linear contrasts of cell means; arrays of shape (..., contrasts).

    ``estimate`` = Σ L_c ȳ_c; ``se`` its standard error (classical or HC2, see the module);
    ``ci_low``/``ci_high`` the two-sided 1 − α interval; ``statistic`` t (classical) or z
    (robust); ``p_value`` two-sided; ``df`` the residual degrees of freedom N − C (NaN for the
    robust normal reference); ``sum_sq`` the Type III sum of squares θ̂² / Σ(L_c²/n_c) (one
    degree of freedom); ``f`` = statistic²; ``reason`` (per leading index, broadcast over the
    contrasts): ``n_below_2`` (an empty cell, no residual degrees of freedom, or, robust, a
    cell below 2 units) or ``zero_variance``."""

    estimate: FloatArray
    se: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    statistic: FloatArray
    p_value: FloatArray
    df: FloatArray
    sum_sq: FloatArray
    f: FloatArray
    reason: StrArray


@dataclass(frozen=True, eq=False)
class Residual:
    """The saturated model's residual row: ``sum_sq`` = Σ_c (n_c − 1) s_c², ``df`` = N − C,
    ``mean_sq`` = σ̂² = sum_sq / df; arrays of the leading shape."""

    sum_sq: FloatArray
    df: FloatArray
    mean_sq: FloatArray


def residual(cells: SampleStats) -> Residual:
    """The residual row of the saturated cell-means model (cells on the last axis)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = np.where(cells.n >= 1, cells.sum_sq - cells.sum**2 / cells.n, 0.0)
        sum_sq = np.maximum(centred, 0.0).sum(axis=-1)
        df = cells.n.sum(axis=-1) - cells.n.shape[-1]
        return Residual(sum_sq, df, np.where(df >= 1, sum_sq / df, np.nan))


def cell_contrasts(
    cells: SampleStats,
    contrasts: FloatArray,
    *,
    alpha: float = 0.05,
    robust: bool = False,
) -> ContrastResult:
    """Contrasts ``contrasts`` (shape (K, C)) of the cell means of ``cells`` (cells on the
    last axis, any leading shape, e.g. metrics); see :class:`ContrastResult`."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    matrix = as_float(contrasts)
    n, total = cells.n, cells.sum
    resid = residual(cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(n >= 1, total / n, np.nan)
        estimate = means @ matrix.T
        weight = matrix**2  # (K, C)
        inverse_n = np.where(n >= 1, 1.0 / n, np.nan)
        design_var = inverse_n @ weight.T  # Σ L²/n per contrast
        if robust:
            variance = np.where(n >= 2, cells.variance, np.nan)
            var = (variance * inverse_n) @ weight.T
            df = np.full(resid.df.shape, np.nan)
            small = np.any(n < 2, axis=-1)
            flat = ~(np.nansum(np.where(n >= 2, variance, 0.0), axis=-1) > 0)
        else:
            var = resid.mean_sq[..., None] * design_var
            df = resid.df
            small = np.any(n < 1, axis=-1) | (resid.df < 1)
            flat = ~(resid.sum_sq > 0)
        codes = reason_codes(resid.df.shape, (N_BELOW_2, small), (ZERO_VARIANCE, flat))
        bad = (codes != 0)[..., None]
        se = np.sqrt(var)
        statistic = estimate / se
        if robust:
            quantile = special.ndtri(1 - alpha / 2)
            p_value = 2 * special.ndtr(-np.abs(statistic))
        else:
            quantile = stats.t.ppf(1 - alpha / 2, df)[..., None]
            p_value = 2 * stats.t.sf(np.abs(statistic), df[..., None])
        sum_sq = estimate**2 / design_var

        def blank(values: FloatArray) -> FloatArray:
            return np.where(bad, np.nan, np.broadcast_to(values, estimate.shape))

        return ContrastResult(
            estimate=blank(estimate),
            se=blank(se),
            ci_low=blank(estimate - quantile * se),
            ci_high=blank(estimate + quantile * se),
            statistic=blank(statistic),
            p_value=blank(p_value),
            df=blank(np.broadcast_to(df[..., None], estimate.shape)),
            sum_sq=blank(sum_sq),
            f=blank(statistic**2),
            reason=np.broadcast_to(reason_array(codes)[..., None], estimate.shape).copy(),
        )


def factorial_terms(k: int) -> list[tuple[int, ...]]:
    """Every effect of a 2^k design as factor positions: main effects first, then two-way
    interactions, … (lexicographic within an order)."""
    if not 1 <= k <= MAX_FACTORS:
        raise ValueError(f"a factorial design has 1 to {MAX_FACTORS} factors, not {k}")
    return [t for size in range(1, k + 1) for t in itertools.combinations(range(k), size)]


def effect_contrasts(signs: FloatArray) -> tuple[list[tuple[int, ...]], FloatArray]:
    """The effect contrasts of a 2^k design whose cell c sets factor j to ``signs[c, j]``
    (+1 high, −1 low): row t is (2 / 2^k) Π_{j∈t} signs[c, j]."""
    matrix = as_float(signs)
    cells, k = matrix.shape
    if cells != 2**k or not np.all(np.abs(matrix) == 1):
        raise ValueError("signs must be a 2^k × k matrix of ±1")
    if len({tuple(row) for row in matrix.tolist()}) != cells:
        raise ValueError("every combination of levels must appear exactly once")
    terms = factorial_terms(k)
    rows = [np.prod(matrix[:, list(term)], axis=1) * 2.0 / cells for term in terms]
    return terms, np.stack(rows)


@dataclass(frozen=True, eq=False)
class FactorialAnova:
    """A 2^k design's effects (``effects``: a :class:`ContrastResult` with one contrast per
    term of ``terms``, on the effect scale: high − low), the ``residual`` row, and
    ``coefficient`` = effect / 2 (the OLS coefficient under ±1 coding)."""

    terms: list[tuple[int, ...]]
    effects: ContrastResult
    residual: Residual

    @property
    def coefficient(self) -> FloatArray:
        return self.effects.estimate / 2.0


def factorial_anova(
    cells: SampleStats, signs: FloatArray, *, alpha: float = 0.05, robust: bool = False
) -> FactorialAnova:
    """Main effects and interactions of a 2^k design from per-cell sufficient statistics
    (cells on the last axis, in the order of the rows of ``signs``).

    Matches statsmodels ``ols("y ~ A * B * …")`` with ±1 columns (or ``C(·, Sum)``):
    coefficient = effect / 2 with the same t and p, and ``anova_lm(fit, typ=3)``: each
    term's sum of squares and F (one degree of freedom), the residual row."""
    terms, matrix = effect_contrasts(signs)
    return FactorialAnova(
        terms, cell_contrasts(cells, matrix, alpha=alpha, robust=robust), residual(cells)
    )


@dataclass(frozen=True, eq=False)
class ArmInteractions:
    """Two experiments A (a arms, control first) and B (b arms, control first) on shared
    units, cells ``(…, a, b)``:

    ``within`` — A's treatment t against A's control inside B's arm j, shape
    (…, a − 1, b) (flattened contrast order: t major, j minor);
    ``interaction`` — that effect in B's arm j minus in B's control, shape (…, a − 1, b − 1):
    ȳ[t, j] − ȳ[0, j] − ȳ[t, 0] + ȳ[0, 0], the OLS interaction coefficient of
    ``y ~ C(a) * C(b)`` with treatment (dummy) coding;
    ``f``, ``f_df``, ``f_p_value`` — the omnibus Wald F for "every interaction is 0" with
    (a − 1)(b − 1) and N − ab degrees of freedom (``anova_lm(typ=3)``'s interaction row;
    with ``robust`` a χ² / q on the HC2 covariance, p from χ²)."""

    within: ContrastResult
    interaction: ContrastResult
    f: FloatArray
    f_df: tuple[int, FloatArray]
    f_p_value: FloatArray


def _within_contrasts(a: int, b: int) -> FloatArray:
    rows = []
    for t in range(1, a):
        for j in range(b):
            row = np.zeros((a, b))
            row[t, j], row[0, j] = 1.0, -1.0
            rows.append(row.ravel())
    return np.stack(rows)


def _interaction_contrasts(a: int, b: int) -> FloatArray:
    rows = []
    for t in range(1, a):
        for j in range(1, b):
            row = np.zeros((a, b))
            row[t, j], row[0, j], row[t, 0], row[0, 0] = 1.0, -1.0, -1.0, 1.0
            rows.append(row.ravel())
    return np.stack(rows)


def arm_interactions(
    cells: SampleStats, *, alpha: float = 0.05, robust: bool = False
) -> ArmInteractions:
    """A's effect by B's arm and the interaction (see :class:`ArmInteractions`); ``cells``
    has shape (…, a, b) with both controls first."""
    n = as_float(cells.n)
    if n.ndim < 2 or n.shape[-2] < 2 or n.shape[-1] < 2:
        raise ValueError("cells must have shape (..., a, b) with a, b >= 2")
    a, b = n.shape[-2:]
    lead = n.shape[:-2]
    flat = SampleStats(
        n.reshape(*lead, a * b),
        as_float(cells.sum).reshape(*lead, a * b),
        as_float(cells.sum_sq).reshape(*lead, a * b),
    )
    within = cell_contrasts(flat, _within_contrasts(a, b), alpha=alpha, robust=robust)
    matrix = _interaction_contrasts(a, b)
    interaction = cell_contrasts(flat, matrix, alpha=alpha, robust=robust)
    f, q, df2, p = _wald(flat, matrix, interaction.estimate, robust=robust)

    def shaped(result: ContrastResult, rows: int, columns: int) -> ContrastResult:
        return ContrastResult(
            **{
                name: getattr(result, name).reshape(*lead, rows, columns)
                for name in ContrastResult.__dataclass_fields__
            }
        )

    return ArmInteractions(
        within=shaped(within, a - 1, b),
        interaction=shaped(interaction, a - 1, b - 1),
        f=f,
        f_df=(q, df2),
        f_p_value=p,
    )


def _wald(
    cells: SampleStats, matrix: FloatArray, estimate: FloatArray, *, robust: bool
) -> tuple[FloatArray, int, FloatArray, FloatArray]:
    """Joint Wald F of ``matrix`` · cell means = 0 (q = rows of ``matrix``)."""
    q = matrix.shape[0]
    resid = residual(cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_n = np.where(cells.n >= 1, 1.0 / cells.n, np.nan)
        if robust:
            per_cell = np.where(cells.n >= 2, cells.variance, np.nan) * inverse_n
        else:
            per_cell = resid.mean_sq[..., None] * inverse_n
        # L diag(v) Lᵀ for every leading index at once
        covariance = np.einsum("kc,...c,lc->...kl", matrix, per_cell, matrix)
        usable = np.all(np.isfinite(covariance), axis=(-2, -1)) & np.all(
            np.isfinite(estimate), axis=-1
        )
        safe = np.where(usable[..., None, None], covariance, np.eye(q))
        solved = np.linalg.solve(safe, np.where(usable[..., None], estimate, 0.0)[..., None])
        chi2 = np.einsum(
            "...k,...k->...", np.where(usable[..., None], estimate, 0.0), solved[..., 0]
        )
        f = np.where(usable, chi2 / q, np.nan)
        if robust:
            df2 = np.full(resid.df.shape, np.nan)
            p = np.where(usable, special.chdtrc(q, chi2), np.nan)
        else:
            df2 = resid.df
            p = np.where(usable, special.fdtrc(q, df2, f), np.nan)
        return f, q, df2, p

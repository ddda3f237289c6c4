"""Factorial effects and interactions from per-cell sufficient statistics, against statsmodels
OLS (±1 effect coding; treatment coding for the interaction of two experiments) and
``anova_lm(typ=3)`` on the same unit-level data, with pinned numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from splitlab.stats import SampleStats
from splitlab.stats.factorial import (
    arm_interactions,
    effect_contrasts,
    factorial_anova,
    factorial_terms,
)

TERMS_2x3 = {(0,): "A", (1,): "B", (2,): "C", (0, 1): "A:B", (0, 2): "A:C", (1, 2): "B:C"}
TERMS_2x3[(0, 1, 2)] = "A:B:C"


def _signs(k: int) -> np.ndarray:
    return np.array([[1 if c >> j & 1 else -1 for j in range(k)] for c in range(2**k)], float)


def _cells(frame: pd.DataFrame, by: str | list[str]) -> SampleStats:
    grouped = frame.assign(y2=frame.y**2).groupby(by)
    return SampleStats(
        grouped.y.count().to_numpy(), grouped.y.sum().to_numpy(), grouped.y2.sum().to_numpy()
    )


@pytest.fixture(scope="module")
def unbalanced_2x3() -> pd.DataFrame:
    """A 2^3 design with unequal cells, a main effect of A and a B × C interaction."""
    rng = np.random.default_rng(7)
    signs = _signs(3)
    parts = []
    for c, size in enumerate(rng.integers(30, 80, size=8)):
        a, b, cc = signs[c]
        y = rng.normal(1 + 0.3 * a + 0.2 * b * cc, 1.5, size=size)
        parts.append(pd.DataFrame({"A": a, "B": b, "C": cc, "cell": c, "y": y}))
    return pd.concat(parts, ignore_index=True)


def test_effects_match_ols_with_effect_coding_and_anova_typ3(unbalanced_2x3: pd.DataFrame) -> None:
    frame = unbalanced_2x3
    result = factorial_anova(_cells(frame, "cell"), _signs(3))
    fit = smf.ols("y ~ A * B * C", frame).fit()
    table = anova_lm(fit, typ=3)
    ci = fit.conf_int()
    assert [TERMS_2x3[t] for t in result.terms] == ["A", "B", "C", "A:B", "A:C", "B:C", "A:B:C"]
    for t, term in enumerate(result.terms):
        name = TERMS_2x3[term]
        effects = result.effects
        assert result.coefficient[t] == pytest.approx(fit.params[name], rel=1e-10, abs=1e-12)
        assert effects.estimate[t] == pytest.approx(2 * fit.params[name], rel=1e-10, abs=1e-12)
        assert effects.se[t] == pytest.approx(2 * fit.bse[name], rel=1e-10)
        assert effects.statistic[t] == pytest.approx(fit.tvalues[name], rel=1e-9, abs=1e-12)
        assert effects.p_value[t] == pytest.approx(fit.pvalues[name], rel=1e-9)
        assert effects.ci_low[t] == pytest.approx(2 * ci.loc[name, 0], rel=1e-10)
        assert effects.ci_high[t] == pytest.approx(2 * ci.loc[name, 1], rel=1e-10)
        assert effects.df[t] == fit.df_resid
        assert effects.sum_sq[t] == pytest.approx(table.loc[name, "sum_sq"], rel=1e-9)
        assert effects.f[t] == pytest.approx(table.loc[name, "F"], rel=1e-9)
        assert effects.reason[t] == ""
    assert result.residual.sum_sq == pytest.approx(table.loc["Residual", "sum_sq"], rel=1e-10)
    assert result.residual.df == table.loc["Residual", "df"] == 506
    # pinned: A's effect and the B × C interaction the data were drawn with (0.6 and 0.4)
    assert result.effects.estimate[0] == pytest.approx(0.49532512, abs=1e-8)
    assert result.effects.estimate[5] == pytest.approx(0.21317924, abs=1e-8)
    assert result.effects.p_value[0] == pytest.approx(1.061332e-04, rel=1e-6)
    assert result.effects.f[0] == pytest.approx(15.264887, rel=1e-7)


def test_sum_coded_categorical_factors_give_the_same_table(unbalanced_2x3: pd.DataFrame) -> None:
    levels = {name: np.where(unbalanced_2x3[name] > 0, "hi", "lo") for name in "ABC"}
    frame = pd.DataFrame({"fa": levels["A"], "fb": levels["B"], "fc": levels["C"]})
    frame["y"] = unbalanced_2x3.y
    table = anova_lm(smf.ols("y ~ C(fa, Sum) * C(fb, Sum) * C(fc, Sum)", frame).fit(), typ=3)
    result = factorial_anova(_cells(unbalanced_2x3, "cell"), _signs(3))
    assert result.effects.sum_sq[-1] == pytest.approx(
        table.loc["C(fa, Sum):C(fb, Sum):C(fc, Sum)", "sum_sq"], rel=1e-9
    )
    assert result.effects.p_value[0] == pytest.approx(table.loc["C(fa, Sum)", "PR(>F)"], rel=1e-9)


def test_balanced_design_type_2_equals_type_3_and_the_effect_is_high_minus_low() -> None:
    rng = np.random.default_rng(3)
    signs = _signs(2)
    parts = [
        pd.DataFrame(
            {"A": s[0], "B": s[1], "cell": c, "y": rng.normal(s[0] + 0.5 * s.prod(), 1, 50)}
        )
        for c, s in enumerate(signs)
    ]
    frame = pd.concat(parts, ignore_index=True)
    result = factorial_anova(_cells(frame, "cell"), signs)
    typ2 = anova_lm(smf.ols("y ~ A * B", frame).fit(), typ=2)
    for t, name in enumerate(["A", "B", "A:B"]):
        assert result.effects.sum_sq[t] == pytest.approx(typ2.loc[name, "sum_sq"], rel=1e-9)
    means = frame.groupby(["A", "B"]).y.mean()
    high = (means[(1.0, -1.0)] + means[(1.0, 1.0)]) / 2
    low = (means[(-1.0, -1.0)] + means[(-1.0, 1.0)]) / 2
    assert result.effects.estimate[0] == pytest.approx(high - low, rel=1e-12)
    a_at_b_high = means[(1.0, 1.0)] - means[(-1.0, 1.0)]
    a_at_b_low = means[(1.0, -1.0)] - means[(-1.0, -1.0)]
    assert result.effects.estimate[2] == pytest.approx((a_at_b_high - a_at_b_low) / 2, rel=1e-12)


def test_robust_standard_errors_are_ols_hc2(unbalanced_2x3: pd.DataFrame) -> None:
    frame = unbalanced_2x3
    result = factorial_anova(_cells(frame, "cell"), _signs(3), robust=True)
    fit = smf.ols("y ~ A * B * C", frame).fit(cov_type="HC2")
    for t, term in enumerate(result.terms):
        name = TERMS_2x3[term]
        assert result.effects.se[t] == pytest.approx(2 * fit.bse[name], rel=1e-10)
        assert result.effects.p_value[t] == pytest.approx(fit.pvalues[name], rel=1e-9)
    assert np.isnan(result.effects.df).all()


def test_vectorised_over_metrics_equals_one_call_per_metric(unbalanced_2x3: pd.DataFrame) -> None:
    one = _cells(unbalanced_2x3, "cell")
    other = _cells(unbalanced_2x3.assign(y=unbalanced_2x3.y**2), "cell")
    both = SampleStats(
        np.stack([one.n, other.n]),
        np.stack([one.sum, other.sum]),
        np.stack([one.sum_sq, other.sum_sq]),
    )
    stacked = factorial_anova(both, _signs(3))
    for m, cells in enumerate([one, other]):
        alone = factorial_anova(cells, _signs(3))
        np.testing.assert_allclose(stacked.effects.estimate[m], alone.effects.estimate, rtol=1e-12)
        np.testing.assert_allclose(stacked.effects.p_value[m], alone.effects.p_value, rtol=1e-12)


def test_degenerate_cells_give_reasons_not_numbers() -> None:
    signs = _signs(2)
    empty = factorial_anova(SampleStats([10, 0, 10, 10], [5, 0, 4, 6], [5, 0, 4, 6]), signs)
    assert set(empty.effects.reason.tolist()) == {"n_below_2"}
    assert np.isnan(empty.effects.estimate).all()
    flat = factorial_anova(SampleStats([5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 5, 5]), signs)
    assert set(flat.effects.reason.tolist()) == {"zero_variance"}
    no_df = factorial_anova(SampleStats([1, 1, 1, 1], [1, 2, 3, 4], [1, 4, 9, 16]), signs)
    assert set(no_df.effects.reason.tolist()) == {"n_below_2"}


def test_designs_that_are_not_2_to_the_k_are_refused() -> None:
    with pytest.raises(ValueError, match="2\\^k"):
        effect_contrasts(np.array([[1, 1], [-1, 1], [1, -1]], float))
    with pytest.raises(ValueError, match="exactly once"):
        effect_contrasts(np.array([[1, 1], [1, 1], [-1, 1], [-1, -1]], float))
    with pytest.raises(ValueError, match="1 to 6"):
        factorial_terms(7)
    assert len(factorial_terms(4)) == 15


@pytest.fixture(scope="module")
def two_experiments() -> pd.DataFrame:
    """A (2 arms) × B (3 arms) on shared units, drawn with A +0.3 better in B's arm 2
    (small cells: the estimates are noisy, and pinned as drawn)."""
    rng = np.random.default_rng(11)
    parts = []
    for a in range(2):
        for b in range(3):
            mean = 1 + 0.2 * a + 0.1 * b + 0.3 * a * (b == 2)
            y = rng.normal(mean, 1, size=int(rng.integers(40, 90)))
            parts.append(pd.DataFrame({"a": a, "b": b, "y": y}))
    return pd.concat(parts, ignore_index=True)


def _grid(frame: pd.DataFrame) -> SampleStats:
    grouped = frame.assign(y2=frame.y**2).groupby(["a", "b"])
    return SampleStats(
        grouped.y.count().unstack().to_numpy(),
        grouped.y.sum().unstack().to_numpy(),
        grouped.y2.sum().unstack().to_numpy(),
    )


def test_interaction_of_two_experiments_matches_ols_interaction_terms(
    two_experiments: pd.DataFrame,
) -> None:
    result = arm_interactions(_grid(two_experiments))
    fit = smf.ols("y ~ C(a) * C(b)", two_experiments).fit()
    ci = fit.conf_int()
    for j, name in enumerate(["C(a)[T.1]:C(b)[T.1]", "C(a)[T.1]:C(b)[T.2]"]):
        got = result.interaction
        assert got.estimate[0, j] == pytest.approx(fit.params[name], rel=1e-10)
        assert got.se[0, j] == pytest.approx(fit.bse[name], rel=1e-10)
        assert got.p_value[0, j] == pytest.approx(fit.pvalues[name], rel=1e-9)
        assert got.ci_low[0, j] == pytest.approx(ci.loc[name, 0], rel=1e-10)
        assert got.df[0, j] == fit.df_resid
    # A's effect in B's control arm is the OLS main-effect coefficient under dummy coding
    assert result.within.estimate[0, 0] == pytest.approx(fit.params["C(a)[T.1]"], rel=1e-10)
    assert result.within.se[0, 0] == pytest.approx(fit.bse["C(a)[T.1]"], rel=1e-10)
    table = anova_lm(smf.ols("y ~ C(a, Sum) * C(b, Sum)", two_experiments).fit(), typ=3)
    row = table.loc["C(a, Sum):C(b, Sum)"]
    assert result.f == pytest.approx(row["F"], rel=1e-9)
    assert result.f_df == (2, table.loc["Residual", "df"])
    assert result.f_p_value == pytest.approx(row["PR(>F)"], rel=1e-9)
    # pinned
    assert result.interaction.estimate[0].tolist() == pytest.approx(
        [-0.23004519, 0.09407720], abs=1e-8
    )
    assert result.f == pytest.approx(0.81538008, rel=1e-8)
    assert result.f_p_value == pytest.approx(0.44332194, rel=1e-7)


def test_robust_interaction_matches_hc2_and_its_wald_test(two_experiments: pd.DataFrame) -> None:
    result = arm_interactions(_grid(two_experiments), robust=True)
    fit = smf.ols("y ~ C(a) * C(b)", two_experiments).fit(cov_type="HC2")
    names = ["C(a)[T.1]:C(b)[T.1]", "C(a)[T.1]:C(b)[T.2]"]
    np.testing.assert_allclose(result.interaction.se[0], fit.bse[names], rtol=1e-10)
    np.testing.assert_allclose(result.interaction.p_value[0], fit.pvalues[names], rtol=1e-9)
    wald = fit.wald_test(f"{names[0]} = 0, {names[1]} = 0", scalar=True)
    assert result.f * 2 == pytest.approx(float(wald.statistic), rel=1e-9)
    assert result.f_p_value == pytest.approx(float(wald.pvalue), rel=1e-9)


def test_a_two_by_two_interaction_is_the_difference_in_differences() -> None:
    cells = SampleStats([[100, 120], [110, 90]], [[10, 14], [15, 20]], [[10, 14], [15, 20]])
    result = arm_interactions(cells)
    means = np.asarray(cells.sum) / np.asarray(cells.n)
    expected = (means[1, 1] - means[0, 1]) - (means[1, 0] - means[0, 0])
    assert result.interaction.estimate[0, 0] == pytest.approx(expected, rel=1e-12)
    assert result.f == pytest.approx(result.interaction.statistic[0, 0] ** 2, rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        arm_interactions(SampleStats([1, 2], [1, 2], [1, 2]))

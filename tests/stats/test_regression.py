"""Multivariate CUPED (regression adjustment) from sufficient statistics against statsmodels
OLS on the units: outcome ~ 1 + treatment + centred covariates."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from splitlab.stats import RegressionStats, regression_test, welch_ttest
from splitlab.stats.aggregates import SampleStats


def _ols(
    y: np.ndarray, t: np.ndarray, z: np.ndarray
) -> sm.regression.linear_model.RegressionResults:
    design = np.column_stack([np.ones(y.size), t, z - z.mean(axis=0)])
    return sm.OLS(y, design).fit()


def _data(seed: int, n_c: int, n_t: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.gamma(2.0, 3.0, size=(n_c + n_t, k))
    t = np.r_[np.zeros(n_c), np.ones(n_t)]
    noise = rng.normal(size=n_c + n_t) * (1.0 + 0.5 * t)  # unequal variances too
    y = 2.0 + 0.4 * t + z @ np.linspace(0.9, -0.3, k) + noise
    return y, t, z


@pytest.mark.parametrize(("n_c", "n_t", "k"), [(500, 480, 1), (300, 900, 3), (40, 25, 5)])
def test_matches_statsmodels_ols(n_c: int, n_t: int, k: int) -> None:
    y, t, z = _data(n_c + k, n_c, n_t, k)
    control = RegressionStats.from_values(y[:n_c], z[:n_c])
    treatment = RegressionStats.from_values(y[n_c:], z[n_c:])
    result = regression_test(control, treatment, alpha=0.05)
    fit = _ols(y, t, z)
    se = float(np.sqrt(result.control_var + result.treatment_var))
    assert float(result.abs_effect) == pytest.approx(fit.params[1], rel=1e-10)
    assert se == pytest.approx(fit.bse[1], rel=1e-10)
    assert float(result.statistic) == pytest.approx(fit.tvalues[1], rel=1e-10)
    assert float(result.p_value) == pytest.approx(fit.pvalues[1], rel=1e-9)
    assert float(result.df) == fit.df_resid
    low, high = fit.conf_int(alpha=0.05)[1]
    assert (float(result.abs_ci_low), float(result.abs_ci_high)) == pytest.approx(
        (low, high), rel=1e-10
    )
    assert result.beta == pytest.approx(fit.params[2:], rel=1e-9)
    # the adjusted means: each arm's mean moved to the pooled covariate mean
    z_bar = z.mean(axis=0)
    for arm, mean in (
        (slice(0, n_c), result.control_mean),
        (slice(n_c, None), result.treatment_mean),
    ):
        expected = y[arm].mean() - fit.params[2:] @ (z[arm].mean(axis=0) - z_bar)
        assert float(mean) == pytest.approx(expected, rel=1e-10)
    raw = welch_ttest(SampleStats.from_values(y[:n_c]), SampleStats.from_values(y[n_c:]))
    raw_se = (float(raw.abs_ci_high) - float(raw.abs_ci_low)) / 2
    assert raw_se > 0 and float(result.variance_reduction) > 0.3


def test_pinned() -> None:
    y, _, z = _data(11, 200, 200, 2)
    result = regression_test(
        RegressionStats.from_values(y[:200], z[:200]), RegressionStats.from_values(y[200:], z[200:])
    )
    pinned = (0.7267799629561376, 3.0647266020770686e-08, 396.0, 0.9068915611563839)
    got = (
        float(result.abs_effect),
        float(result.p_value),
        float(result.df),
        float(result.variance_reduction),
    )
    assert got == pytest.approx(pinned, rel=1e-9)


def test_broadcasts_like_separate_calls() -> None:
    """Stacked (cells × treatments) input gives each comparison's own answer."""
    blocks = [_data(seed, 120 + seed, 100, 2) for seed in range(6)]
    arms = []
    for y, t, z in blocks:
        c, tr = t == 0, t == 1
        arms.append(
            (RegressionStats.from_values(y[c], z[c]), RegressionStats.from_values(y[tr], z[tr]))
        )

    def stack(side: int) -> RegressionStats:
        fields = ("n", "sum_y", "sum_y_sq", "sum_z", "sum_zz", "sum_zy")
        return RegressionStats(
            *(
                np.stack([getattr(a[side], f) for a in arms]).reshape(
                    2, 3, *np.shape(getattr(arms[0][side], f))
                )
                for f in fields
            )
        )

    together = regression_test(stack(0), stack(1))
    for index, (c, t) in enumerate(arms):
        alone = regression_test(c, t)
        cell = np.unravel_index(index, (2, 3))
        assert float(together.p_value[cell]) == pytest.approx(float(alone.p_value), rel=1e-12)
        assert float(together.abs_effect[cell]) == pytest.approx(float(alone.abs_effect), rel=1e-12)


def test_constant_or_collinear_covariate_is_dropped_as_ols_drops_it() -> None:
    y, t, z = _data(5, 150, 160, 1)
    doubled = np.column_stack([z, 2 * z, np.zeros(y.size)])  # collinear + constant
    result = regression_test(
        RegressionStats.from_values(y[:150], doubled[:150]),
        RegressionStats.from_values(y[150:], doubled[150:]),
    )
    alone = _ols(y, t, z)
    assert float(result.abs_effect) == pytest.approx(alone.params[1], rel=1e-9)
    # as statsmodels' pinv fit: one covariate's worth of degrees of freedom, the same SE
    fit = _ols(y, t, doubled)
    assert float(np.sqrt(result.control_var + result.treatment_var)) == pytest.approx(
        fit.bse[1], rel=1e-8
    )
    assert float(result.df) == fit.df_resid == y.size - 2 - 1


def test_degenerate_comparisons_have_reasons() -> None:
    one = RegressionStats.from_values(np.array([1.0]), np.array([[2.0]]))
    many = RegressionStats.from_values(np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [4.0]]))
    assert str(regression_test(one, many).reason) == "n_below_2"
    # two units per arm and two covariates leave no residual degree of freedom
    two = RegressionStats.from_values(np.array([1.0, 2.0]), np.array([[1.0, 0.0], [2.0, 1.0]]))
    other = RegressionStats.from_values(np.array([1.0, 5.0]), np.array([[1.0, 3.0], [2.0, 1.0]]))
    result = regression_test(two, other)
    assert str(result.reason) == "n_below_2" and np.isnan(result.p_value)
    flat = RegressionStats.from_values(np.ones(5), np.arange(5.0)[:, None])
    assert str(regression_test(flat, flat).reason) == "zero_variance"

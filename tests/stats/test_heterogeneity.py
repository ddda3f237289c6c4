"""Cochran's Q and the interaction z-test against statsmodels' meta-analysis."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.meta_analysis import combine_effects

from splitlab.stats import heterogeneity


def test_matches_statsmodels_combine_effects() -> None:
    rng = np.random.default_rng(4)
    effects = rng.normal(0.1, 0.3, size=(3, 6))
    variances = rng.uniform(0.01, 0.2, size=(3, 6))
    result = heterogeneity(effects, variances, axis=1)
    for row in range(3):
        expected = combine_effects(effects[row], variances[row])
        _, p = expected.test_homogeneity()[:2]
        assert result.q[row] == pytest.approx(expected.q, rel=1e-12)
        assert result.p_value[row] == pytest.approx(p, rel=1e-10)
        assert result.df[row] == 5 and result.cells[row] == 6
        assert result.pooled[row] == pytest.approx(expected.mean_effect_fe, rel=1e-12)
        assert result.i_squared[row] == pytest.approx(max(0.0, expected.i2), abs=1e-12)
    pinned = heterogeneity(np.array([0.1, 0.5, -0.2]), np.array([0.01, 0.04, 0.02]))
    assert float(pinned.q) == pytest.approx(117 / 14, rel=1e-12)  # by hand: w = 100, 25, 50


def test_unusable_cells_are_left_out() -> None:
    effects = np.array([0.2, np.nan, 0.5, 0.1, 0.4])
    variances = np.array([0.02, 0.01, 0.0, 0.03, 0.05])
    result = heterogeneity(effects, variances)
    expected = combine_effects(effects[[0, 3, 4]], variances[[0, 3, 4]])
    assert float(result.q) == pytest.approx(expected.q, rel=1e-12)
    assert float(result.cells) == 3 and float(result.df) == 2


def test_two_cells_interaction_z() -> None:
    result = heterogeneity(np.array([[0.3, np.nan, -0.1]]), np.array([[0.04, 0.1, 0.05]]))
    z = (-0.1 - 0.3) / np.sqrt(0.04 + 0.05)
    assert result.z[0] == pytest.approx(z, rel=1e-12)
    assert result.q[0] == pytest.approx(z * z, rel=1e-12)
    assert result.p_value[0] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)), rel=1e-10)


def test_fewer_than_two_cells() -> None:
    result = heterogeneity(np.array([0.3, np.nan]), np.array([0.04, 0.1]))
    assert str(result.reason) == "n_below_2" and np.isnan(result.q)

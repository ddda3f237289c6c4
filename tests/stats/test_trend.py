"""The weighted trend test against statsmodels WLS with a known (fixed) scale, pinned."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from splitlab.stats.trend import weighted_trend


def _statsmodels(x: np.ndarray, y: np.ndarray, variance: np.ndarray) -> tuple[float, ...]:
    fit = sm.WLS(y, sm.add_constant(x), weights=1.0 / variance).fit(cov_type="fixed scale")
    return fit.params[1], fit.bse[1], fit.tvalues[1], fit.pvalues[1]


def test_matches_statsmodels_wls_with_known_variances(rng: np.random.Generator) -> None:
    x = np.arange(12, dtype=float)
    variance = rng.uniform(0.5, 2.0, 12) * 1e-3
    y = 0.05 - 0.004 * x + rng.normal(size=12) * np.sqrt(variance)
    result = weighted_trend(x, y, variance)
    slope, se, z, p = _statsmodels(x, y, variance)
    assert float(result.slope) == pytest.approx(slope, rel=1e-9)
    assert float(result.standard_error) == pytest.approx(se, rel=1e-9)
    assert float(result.statistic) == pytest.approx(z, rel=1e-9)
    assert float(result.p_value) == pytest.approx(p, rel=1e-9)
    assert float(result.points) == 12 and result.reason == ""


def test_vectorised_rows_leave_out_unusable_points(rng: np.random.Generator) -> None:
    x = np.arange(8, dtype=float)
    y = rng.normal(size=(3, 8))
    variance = rng.uniform(0.5, 2.0, (3, 8))
    y[0, 2] = np.nan
    variance[1, 5] = 0.0
    variance[2, 0] = np.inf
    result = weighted_trend(x, y, variance)
    assert result.slope.shape == (3,)
    for row in range(3):
        keep = np.isfinite(y[row]) & np.isfinite(variance[row]) & (variance[row] > 0)
        slope, se, _, p = _statsmodels(x[keep], y[row, keep], variance[row, keep])
        assert result.slope[row] == pytest.approx(slope, rel=1e-9)
        assert result.standard_error[row] == pytest.approx(se, rel=1e-9)
        assert result.p_value[row] == pytest.approx(p, rel=1e-9)
        assert result.points[row] == keep.sum() == 7


def test_pinned() -> None:
    y = [0.10, 0.08, 0.07, 0.05, 0.02]
    result = weighted_trend([0, 1, 2, 3, 4], y, [1e-4, 1e-4, 2e-4, 2e-4, 4e-4])
    assert float(result.slope) == pytest.approx(-0.01788321167883212, rel=1e-12)
    assert float(result.p_value) == pytest.approx(4.0421627427515e-05, rel=1e-9)


def test_degenerate_inputs_carry_a_reason() -> None:
    result = weighted_trend(
        [[0.0, 1.0, 2.0], [3.0, 3.0, 3.0]], [[1.0, np.nan, np.nan], [1.0, 2.0, 3.0]], 1.0
    )
    assert list(result.reason) == ["n_below_2", "zero_variance"]
    assert np.isnan(result.slope).all() and np.isnan(result.p_value).all()

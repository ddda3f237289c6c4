"""χ² omnibus, one-way ANOVA, multiplicity adjustments and SRM against scipy/statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.oneway import anova_oneway as sm_anova_oneway

from splitlab.stats import (
    SRM_P_THRESHOLD,
    SampleStats,
    anova_oneway,
    benjamini_hochberg,
    bonferroni,
    chi2_omnibus,
    holm,
    srm_test,
)


def test_chi2_omnibus_matches_chi2_contingency(rng: np.random.Generator) -> None:
    n = rng.integers(100, 5000, size=(20, 4))
    x = rng.binomial(n, rng.uniform(0.05, 0.5, size=(20, 1)))
    result = chi2_omnibus(x, n)
    for i in range(20):
        table = np.stack([x[i], n[i] - x[i]], axis=1)
        chi2, p, dof, _ = sps.chi2_contingency(table, correction=False)
        assert result.statistic[i] == pytest.approx(chi2, rel=1e-9)
        assert result.p_value[i] == pytest.approx(p, rel=1e-9)
        assert result.df[i] == dof
    assert np.all(result.reason == "")


def test_chi2_omnibus_pinned_and_degenerate() -> None:
    result = chi2_omnibus([[10, 20], [0, 0], [5, 1]], [[100, 100], [50, 50], [10, 1]])
    assert float(result.statistic[0]) == pytest.approx(3.9215686275, rel=1e-9)
    assert float(result.p_value[0]) == pytest.approx(0.0476703807, rel=1e-8)
    assert list(result.reason) == ["", "zero_variance", "n_below_2"]
    assert np.isnan(result.statistic[1]) and np.isnan(result.p_value[2])


def test_anova_matches_scipy_and_statsmodels(rng: np.random.Generator) -> None:
    groups = [rng.normal(mu, 2.0, size) for mu, size in [(1.0, 40), (1.5, 55), (0.8, 30)]]
    result = anova_oneway([SampleStats.from_values(g) for g in groups])
    ref = sps.f_oneway(*groups)
    sm = sm_anova_oneway(groups, use_var="equal")
    assert float(result.statistic) == pytest.approx(ref.statistic, rel=1e-9)
    assert float(result.p_value) == pytest.approx(ref.pvalue, rel=1e-9)
    assert float(result.statistic) == pytest.approx(sm.statistic, rel=1e-9)
    assert float(result.df) == 2.0 and float(result.df_denominator) == 122.0


def test_anova_vectorised_over_families(rng: np.random.Generator) -> None:
    data = rng.normal(size=(5, 3, 20))  # 5 families × 3 groups × 20 units
    arms = [SampleStats.from_values(data[:, g, :]) for g in range(3)]
    result = anova_oneway(arms)
    for family in range(5):
        ref = sps.f_oneway(*data[family])
        assert result.p_value[family] == pytest.approx(ref.pvalue, rel=1e-9)


def test_anova_degenerate() -> None:
    constant = SampleStats(5, 10, 20)
    result = anova_oneway([constant, constant])
    assert result.reason == "zero_variance" and np.isnan(result.statistic)
    with pytest.raises(ValueError):
        anova_oneway([constant])


@pytest.mark.parametrize(
    ("ours", "method"), [(holm, "holm"), (benjamini_hochberg, "fdr_bh"), (bonferroni, "bonferroni")]
)
def test_adjustments_match_multipletests(rng: np.random.Generator, ours, method: str) -> None:
    p = rng.uniform(0, 0.2, size=(30, 12)) ** 2
    p[0, :3] = p[0, 3]  # ties
    adjusted = ours(p)
    for row in range(30):
        expected = multipletests(p[row], method=method)[1]
        np.testing.assert_allclose(adjusted[row], expected, rtol=1e-12)


def test_adjustments_pinned() -> None:
    p = [0.01, 0.04, 0.03, 0.20]
    assert list(bonferroni(p)) == pytest.approx([0.04, 0.16, 0.12, 0.8])
    assert list(holm(p)) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert list(benjamini_hochberg(p)) == pytest.approx([0.04, 0.05333333, 0.05333333, 0.2])


def test_srm_matches_chisquare(rng: np.random.Generator) -> None:
    observed = rng.multinomial(10_000, [0.5, 0.3, 0.2], size=10)
    result = srm_test(observed, [5, 3, 2])
    for i in range(10):
        ref = sps.chisquare(observed[i], f_exp=10_000 * np.array([0.5, 0.3, 0.2]))
        assert result.chi2[i] == pytest.approx(ref.statistic, rel=1e-9)
        assert result.p_value[i] == pytest.approx(ref.pvalue, rel=1e-9)


def test_srm_flags_below_threshold() -> None:
    chi2, p_value = srm_test([5000, 5000], [1, 1])
    assert float(chi2) == 0.0 and float(p_value) == 1.0
    bad = srm_test([5000, 5400], [0.5, 0.5])
    assert float(bad.p_value) < SRM_P_THRESHOLD == 0.001
    assert bool(bad.detected)
    assert not bool(srm_test([5000, 5100], [0.5, 0.5]).detected)

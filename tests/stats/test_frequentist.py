"""z-test for proportions and Welch's t-test against statsmodels/scipy, plus properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import ttest_ind

from splitlab.stats import SampleStats, welch_ttest, ztest_proportions

RTOL = 1e-9
SM_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def _random_proportion_cases(rng: np.random.Generator, size: int):
    n_c = rng.integers(50, 20_000, size)
    n_t = rng.integers(50, 20_000, size)
    x_c = rng.binomial(n_c, rng.uniform(0.02, 0.6, size))
    x_t = rng.binomial(n_t, rng.uniform(0.02, 0.6, size))
    return n_c, x_c, n_t, x_t


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_ztest_matches_statsmodels(rng: np.random.Generator, alternative: str) -> None:
    n_c, x_c, n_t, x_t = _random_proportion_cases(rng, 40)
    result = ztest_proportions(
        SampleStats(n_c, x_c, x_c), SampleStats(n_t, x_t, x_t), alternative=alternative
    )
    assert result.control_mean.shape == (40,)
    for i in range(40):
        stat, p = proportions_ztest(
            [x_t[i], x_c[i]], [n_t[i], n_c[i]], alternative=SM_ALTERNATIVE[alternative]
        )
        assert result.statistic[i] == pytest.approx(stat, rel=RTOL)
        assert result.p_value[i] == pytest.approx(p, rel=RTOL)
        if alternative == "two-sided":
            low, high = confint_proportions_2indep(
                x_t[i], n_t[i], x_c[i], n_c[i], method="wald", compare="diff"
            )
            assert result.abs_ci_low[i] == pytest.approx(low, rel=RTOL)
            assert result.abs_ci_high[i] == pytest.approx(high, rel=RTOL)
    assert np.all(result.reason == "")
    assert np.all(np.isnan(result.df))


def test_ztest_pinned() -> None:
    result = ztest_proportions(SampleStats(1000, 100, 100), SampleStats(1100, 130, 130))
    assert float(result.control_mean) == pytest.approx(0.1)
    assert float(result.treatment_mean) == pytest.approx(130 / 1100)
    assert float(result.abs_effect) == pytest.approx(0.0181818181818)
    assert float(result.abs_ci_low) == pytest.approx(-0.0084578920615, rel=1e-9)
    assert float(result.abs_ci_high) == pytest.approx(0.0448215284251, rel=1e-9)
    assert float(result.rel_effect) == pytest.approx(0.1818181818182)
    assert float(result.rel_ci_low) == pytest.approx(-0.10918418, rel=1e-6)
    assert float(result.rel_ci_high) == pytest.approx(0.47282055, rel=1e-6)
    assert float(result.statistic) == pytest.approx(1.3324734956, rel=1e-9)
    assert float(result.p_value) == pytest.approx(0.1827046453, rel=1e-9)


def _random_samples(rng: np.random.Generator, count: int):
    pairs = []
    for _ in range(count):
        n_c, n_t = rng.integers(2, 400, 2)
        a = rng.lognormal(rng.uniform(0, 1), rng.uniform(0.2, 1.5), n_c)
        b = rng.lognormal(rng.uniform(0, 1), rng.uniform(0.2, 1.5), n_t)
        pairs.append((a, b))
    return pairs


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_matches_scipy_and_statsmodels(rng: np.random.Generator, alternative: str) -> None:
    pairs = _random_samples(rng, 30)
    control = SampleStats(*np.array([[len(a), a.sum(), (a * a).sum()] for a, _ in pairs]).T)
    treatment = SampleStats(*np.array([[len(b), b.sum(), (b * b).sum()] for _, b in pairs]).T)
    result = welch_ttest(control, treatment, alternative=alternative, alpha=0.1)
    for i, (a, b) in enumerate(pairs):
        ref = sps.ttest_ind(b, a, equal_var=False, alternative=alternative)
        t_sm, p_sm, df_sm = ttest_ind(
            b, a, usevar="unequal", alternative=SM_ALTERNATIVE[alternative]
        )
        ci = ref.confidence_interval(0.9)
        assert result.statistic[i] == pytest.approx(ref.statistic, rel=RTOL)
        assert result.statistic[i] == pytest.approx(t_sm, rel=RTOL)
        assert result.p_value[i] == pytest.approx(ref.pvalue, rel=RTOL)
        assert result.p_value[i] == pytest.approx(p_sm, rel=RTOL)
        assert result.df[i] == pytest.approx(df_sm, rel=RTOL)
        assert result.abs_ci_low[i] == pytest.approx(ci.low, rel=RTOL)
        assert result.abs_ci_high[i] == pytest.approx(ci.high, rel=RTOL)


def test_welch_large_df_uses_accurate_t_quantile(rng: np.random.Generator) -> None:
    a = rng.normal(10, 3, 5000)
    b = rng.normal(10.2, 2, 7000)
    result = welch_ttest(SampleStats.from_values(a), SampleStats.from_values(b))
    ci = sps.ttest_ind(b, a, equal_var=False).confidence_interval()
    assert float(result.abs_ci_low) == pytest.approx(ci.low, rel=1e-9)
    assert float(result.abs_ci_high) == pytest.approx(ci.high, rel=1e-9)


def test_relative_ci_is_delta_method(rng: np.random.Generator) -> None:
    a = rng.normal(5, 2, 300)
    b = rng.normal(5.5, 2, 250)
    result = welch_ttest(SampleStats.from_values(a), SampleStats.from_values(b))
    m_a, m_b = a.mean(), b.mean()
    var = b.var(ddof=1) / (250 * m_a**2) + m_b**2 * a.var(ddof=1) / (300 * m_a**4)
    half = sps.t.ppf(0.975, float(result.df)) * np.sqrt(var)
    assert float(result.rel_effect) == pytest.approx(m_b / m_a - 1, rel=1e-12)
    assert float(result.rel_ci_low) == pytest.approx(m_b / m_a - 1 - half, rel=1e-9)
    assert float(result.rel_ci_high) == pytest.approx(m_b / m_a - 1 + half, rel=1e-9)


def test_welch_pinned() -> None:
    control = SampleStats.from_values([1.0, 2.0, 3.0, 4.0, 5.0])
    treatment = SampleStats.from_values([2.0, 4.0, 6.0, 8.0])
    result = welch_ttest(control, treatment)
    ref = sps.ttest_ind([2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0, 5.0], equal_var=False)
    assert float(result.control_mean) == 3.0
    assert float(result.treatment_mean) == 5.0
    assert float(result.abs_effect) == 2.0
    assert float(result.rel_effect) == pytest.approx(2.0 / 3.0)
    assert float(result.statistic) == pytest.approx(1.3587324410, rel=1e-9)  # 2 / √(2.5/5 + 20/3/4)
    assert float(result.statistic) == pytest.approx(ref.statistic, rel=1e-12)
    assert float(result.df) == pytest.approx(4.7494145199, rel=1e-9)
    assert float(result.p_value) == pytest.approx(ref.pvalue, rel=1e-9)
    assert float(result.p_value) == pytest.approx(0.2351941114, rel=1e-9)
    assert float(result.abs_ci_low) == pytest.approx(-1.8446363839, rel=1e-9)
    assert float(result.abs_ci_high) == pytest.approx(5.8446363839, rel=1e-9)


def test_one_sided_cis_are_half_open() -> None:
    control, treatment = SampleStats(100, 50, 40), SampleStats(100, 60, 50)
    greater = welch_ttest(control, treatment, alternative="greater")
    less = welch_ttest(control, treatment, alternative="less")
    assert np.isinf(greater.abs_ci_high) and np.isfinite(greater.abs_ci_low)
    assert np.isinf(less.abs_ci_low) and np.isfinite(less.abs_ci_high)
    assert float(greater.p_value + less.p_value) == pytest.approx(1.0)


def test_non_inferiority_margin_shifts_the_null() -> None:
    control, treatment = SampleStats(400, 400, 800), SampleStats(400, 392, 784)
    plain = welch_ttest(control, treatment, alternative="greater")
    margin = welch_ttest(control, treatment, alternative="greater", margin=0.05)
    relative = welch_ttest(
        control, treatment, alternative="greater", margin=0.05, margin_type="relative"
    )
    se = float(plain.abs_effect / plain.statistic)
    assert float(margin.statistic) == pytest.approx((-0.02 + 0.05) / se)
    assert float(relative.statistic) == pytest.approx(float(margin.statistic))  # mean is 1
    assert float(margin.p_value) < float(plain.p_value)
    z_margin = ztest_proportions(
        SampleStats(1000, 500, 500), SampleStats(1000, 490, 490), alternative="greater", margin=0.02
    )
    se_unpooled = np.sqrt(0.25 / 1000 + 0.49 * 0.51 / 1000)
    assert float(z_margin.statistic) == pytest.approx((-0.01 + 0.02) / se_unpooled)
    with pytest.raises(ValueError, match="one-sided"):
        welch_ttest(control, treatment, margin=0.1)
    with pytest.raises(ValueError, match="alternative"):
        welch_ttest(control, treatment, alternative="bigger")  # type: ignore[arg-type]


def test_degenerate_inputs_give_reasons_not_exceptions() -> None:
    control = SampleStats([1, 10, 10, 10, 10], [1, 0, 20, 5, 0], [1, 0, 40, 5, 0])
    treatment = SampleStats([10, 10, 10, 1, 10], [5, 0, 20, 1, 5], [5, 0, 40, 1, 5])
    result = welch_ttest(control, treatment)
    assert list(result.reason) == [
        "n_below_2",
        "zero_variance",
        "zero_variance",
        "n_below_2",
        "zero_control_mean",
    ]
    assert np.all(np.isnan(result.p_value[:4]))
    assert np.all(np.isnan(result.abs_effect[:4]))
    # zero control mean: the absolute comparison is still valid, the relative one is not
    assert np.isfinite(result.p_value[4]) and np.isnan(result.rel_effect[4])
    assert np.isnan(result.rel_ci_low[4]) and np.isnan(result.rel_ci_high[4])


def test_ztest_invalid_counts() -> None:
    result = ztest_proportions(SampleStats([10, 10], [11, 0], [11, 0]), SampleStats(10, 5, 5))
    assert list(result.reason) == ["invalid_counts", "zero_control_mean"]
    assert np.isnan(result.statistic[0])


counts = st.integers(2, 5000)


@settings(max_examples=60, deadline=None)
@given(counts, counts, st.floats(0.01, 0.99), st.floats(0.01, 0.99))
def test_swapping_arms_negates_the_effect(n_c: int, n_t: int, p_c: float, p_t: float) -> None:
    control = SampleStats(n_c, round(n_c * p_c), round(n_c * p_c))
    treatment = SampleStats(n_t, round(n_t * p_t), round(n_t * p_t))
    for test in (ztest_proportions, welch_ttest):
        forward = test(control, treatment)
        backward = test(treatment, control)
        if forward.reason == "":
            assert float(forward.statistic) == pytest.approx(-float(backward.statistic), rel=1e-9)
            assert float(forward.p_value) == pytest.approx(float(backward.p_value), rel=1e-9)
            assert float(forward.abs_ci_low) == pytest.approx(-float(backward.abs_ci_high))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-100, 100), min_size=3, max_size=20),
    st.lists(st.floats(-100, 100), min_size=3, max_size=20),
    st.floats(1e-3, 1e3),
)
def test_welch_is_invariant_to_scaling(a: list[float], b: list[float], scale: float) -> None:
    base = welch_ttest(SampleStats.from_values(a), SampleStats.from_values(b))
    scaled = welch_ttest(
        SampleStats.from_values(np.array(a) * scale), SampleStats.from_values(np.array(b) * scale)
    )
    assert base.reason == scaled.reason
    if base.reason == "" and abs(float(base.statistic)) < 1e6:
        assert float(scaled.statistic) == pytest.approx(float(base.statistic), rel=1e-6, abs=1e-9)
        assert float(scaled.rel_effect) == pytest.approx(float(base.rel_effect), rel=1e-6, abs=1e-9)
        assert float(scaled.abs_effect) == pytest.approx(
            float(base.abs_effect) * scale, rel=1e-6, abs=1e-6
        )


def test_broadcasting_over_comparisons() -> None:
    control = SampleStats(np.full((3, 1), 100.0), np.full((3, 1), 10.0), np.full((3, 1), 10.0))
    treatment = SampleStats(np.full((1, 4), 100.0), np.arange(4) * 5.0 + 1, np.arange(4) * 5.0 + 1)
    result = ztest_proportions(control, treatment)
    assert result.p_value.shape == (3, 4)
    assert result.reason.shape == (3, 4)

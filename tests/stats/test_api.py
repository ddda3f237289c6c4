"""The public surface of splitlab.stats is exactly the documented list."""

from __future__ import annotations

import inspect

import splitlab.stats as stats

DOCUMENTED = {
    # sufficient statistics
    "SampleStats",
    "CovariateStats",
    "RatioStats",
    "QuantileStats",
    "RegressionStats",
    # results
    "TestResult",
    "CupedResult",
    "RegressionResult",
    "HeterogeneityResult",
    "CupedArms",
    "TrendResult",
    "BayesianResult",
    "OmnibusResult",
    "SprtResult",
    "SrmResult",
    "SampleSize",
    "REASONS",
    "SRM_P_THRESHOLD",
    # frequentist
    "ztest_proportions",
    "welch_ttest",
    "cuped_test",
    "cuped_arms",
    "regression_test",
    "heterogeneity",
    "ratio_test",
    "quantile_test",
    "quantile_ranks",
    "chi2_omnibus",
    "anova_oneway",
    "holm",
    "benjamini_hochberg",
    "bonferroni",
    "srm_test",
    # relative-effect intervals
    "relative_interval",
    "relative_effect_variance",
    "RELATIVE_METHODS",
    # trends over time
    "weighted_trend",
    # Bayesian and bandits
    "bayesian_test",
    "probability_best",
    "thompson_weights",
    "beta_posteriors",
    "BetaPosteriors",
    # sequential
    "sprt_bernoulli",
    "sequential_test",
    "msprt_pvalue",
    # power
    "sample_size_proportions",
    "sample_size_means",
    "normal_sample_size",
    "mde_for_sample_size",
    "power_curve",
    "duration_days",
    "achieved_power",
}


def test_all_is_exactly_the_documented_list() -> None:
    assert set(stats.__all__) == DOCUMENTED
    assert len(stats.__all__) == len(DOCUMENTED)


def test_every_exported_name_resolves_and_callables_are_documented() -> None:
    for name in stats.__all__:
        obj = getattr(stats, name)
        if callable(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_functions_state_their_formula() -> None:
    # A docstring that names the formula contains an '=' sign.
    for name in stats.__all__:
        obj = getattr(stats, name)
        if inspect.isfunction(obj):
            assert "=" in (obj.__doc__ or ""), f"{name} docstring does not state its formula"


def test_reason_codes_are_unique_and_ok_is_empty() -> None:
    assert stats.REASONS[0] == ""
    assert len(set(stats.REASONS)) == len(stats.REASONS)

"""Splitlab statistics: pure numpy/scipy functions on sufficient statistics.

Every function broadcasts over numpy arrays, so one call computes many comparisons
(metrics × variants × segments × days).  Degenerate comparisons never raise: their numbers
are NaN and their ``reason`` names the problem (see :mod:`splitlab.stats.results`).
"""

from splitlab.stats.aggregates import CovariateStats, RatioStats, SampleStats
from splitlab.stats.bandit import BetaPosteriors, beta_posteriors, thompson_weights
from splitlab.stats.bayesian import BayesianResult, bayesian_test, probability_best
from splitlab.stats.cuped import CupedArms, cuped_arms, cuped_test
from splitlab.stats.frequentist import welch_ttest, ztest_proportions
from splitlab.stats.heterogeneity import HeterogeneityResult, heterogeneity
from splitlab.stats.multiple import benjamini_hochberg, bonferroni, holm
from splitlab.stats.omnibus import OmnibusResult, anova_oneway, chi2_omnibus
from splitlab.stats.power import (
    SampleSize,
    achieved_power,
    duration_days,
    mde_for_sample_size,
    normal_sample_size,
    power_curve,
    sample_size_means,
    sample_size_proportions,
)
from splitlab.stats.quantile import QuantileStats, quantile_ranks, quantile_test
from splitlab.stats.ratio import ratio_test
from splitlab.stats.regression import RegressionResult, RegressionStats, regression_test
from splitlab.stats.relative import RELATIVE_METHODS, relative_effect_variance, relative_interval
from splitlab.stats.results import REASONS, CupedResult, TestResult
from splitlab.stats.sequential import SprtResult, msprt_pvalue, sequential_test, sprt_bernoulli
from splitlab.stats.srm import SRM_P_THRESHOLD, SrmResult, srm_test
from splitlab.stats.trend import TrendResult, weighted_trend

__all__ = [
    "REASONS",
    "RELATIVE_METHODS",
    "SRM_P_THRESHOLD",
    "BayesianResult",
    "BetaPosteriors",
    "CovariateStats",
    "CupedArms",
    "CupedResult",
    "HeterogeneityResult",
    "OmnibusResult",
    "QuantileStats",
    "RatioStats",
    "RegressionResult",
    "RegressionStats",
    "SampleSize",
    "SampleStats",
    "SprtResult",
    "SrmResult",
    "TestResult",
    "TrendResult",
    "achieved_power",
    "anova_oneway",
    "bayesian_test",
    "benjamini_hochberg",
    "beta_posteriors",
    "bonferroni",
    "chi2_omnibus",
    "cuped_arms",
    "cuped_test",
    "duration_days",
    "heterogeneity",
    "holm",
    "mde_for_sample_size",
    "msprt_pvalue",
    "normal_sample_size",
    "power_curve",
    "probability_best",
    "quantile_ranks",
    "quantile_test",
    "ratio_test",
    "regression_test",
    "relative_effect_variance",
    "relative_interval",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_test",
    "sprt_bernoulli",
    "srm_test",
    "thompson_weights",
    "weighted_trend",
    "welch_ttest",
    "ztest_proportions",
]

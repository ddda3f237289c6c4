"""Event-level quantiles with the clustered delta-method SE (Deng, Knoblich & Lu 2018): the
bracket's variance against an independent computation, and an A/A simulation with heavy users
where the naive i.i.d. interval's false-positive rate explodes and the clustered one holds."""

from __future__ import annotations

import numpy as np
import pytest

from splitlab.stats import quantile_ranks, quantile_test
from splitlab.stats.event_quantile import clustered_quantile_ranks, event_quantile_stats


def _heavy_users(rng: np.random.Generator, units: int) -> list[np.ndarray]:
    """Units with 2 to ~100 events each; a unit's events share its level (correlated)."""
    counts = 1 + rng.geometric(0.08, size=units)
    level = rng.lognormal(0.0, 0.8, size=units)
    return [lv * rng.lognormal(0.0, 0.2, size=c) for lv, c in zip(level, counts, strict=True)]


def test_bracket_is_the_delta_method_variance_of_the_ratio() -> None:
    rng = np.random.default_rng(1)
    units = _heavy_users(rng, 500)
    events = np.concatenate(units)
    q_hat = np.quantile(events, 0.9)
    below = np.array([np.sum(u <= q_hat) for u in units], dtype=float)
    counts = np.array([u.size for u in units], dtype=float)
    low, high = clustered_quantile_ranks(
        0.9,
        500,
        below.sum(),
        (below**2).sum(),
        counts.sum(),
        (counts**2).sum(),
        (below * counts).sum(),
    )
    # independently: the linearised ratio ΣI/ΣN, residuals Iᵢ − F Nᵢ over the mean N
    f = below.sum() / counts.sum()
    residual = below - f * counts
    se = np.sqrt(residual.var(ddof=1) / (500 * counts.mean() ** 2))
    assert (float(low), float(high)) == pytest.approx(
        (0.9 - 1.959963984540054 * se, 0.9 + 1.959963984540054 * se), rel=1e-12
    )
    # much wider than the i.i.d. bracket over all events: the events are clustered
    naive_low, _ = quantile_ranks(events.size, 0.9)
    assert 0.9 - float(low) > 3 * (0.9 - float(naive_low))


def test_one_event_per_unit_is_the_iid_bracket() -> None:
    rng = np.random.default_rng(2)
    values = [np.array([v]) for v in rng.normal(size=2000)]
    clustered = event_quantile_stats(values, 0.5)
    naive = event_quantile_stats(values, 0.5, clustered=False)
    # the same bracket but for the n/(n − 1) of the sample variance
    ratio = clustered.standard_error / naive.standard_error
    assert float(ratio) == pytest.approx(1.0, abs=0.01)


def test_aa_false_positive_rate_with_heavy_users() -> None:
    rng = np.random.default_rng(2018)
    simulations, units = 200, 800
    rejections = {True: 0, False: 0}
    estimates, errors = [], []
    for _ in range(simulations):
        control, treatment = _heavy_users(rng, units), _heavy_users(rng, units)
        for clustered in (True, False):
            a = event_quantile_stats(control, 0.95, clustered=clustered)
            b = event_quantile_stats(treatment, 0.95, clustered=clustered)
            rejections[clustered] += float(quantile_test(a, b).p_value) < 0.05
            if clustered:
                estimates.append(float(a.estimate))
                errors.append(float(a.standard_error))
    clustered_rate = rejections[True] / simulations
    naive_rate = rejections[False] / simulations
    # pinned on this seed: the naive interval rejects a true null most of the time
    assert (clustered_rate, naive_rate) == (0.02, 0.645)
    assert naive_rate > 0.5 and clustered_rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / simulations)
    # and the clustered SE is calibrated: its mean is the spread of the estimate across runs
    assert np.mean(errors) == pytest.approx(np.std(estimates, ddof=1), rel=0.15)

"""James–Stein shrinkage against the direct formula, Efron–Morris's equal-variance estimator,
pinned numbers and simulations of the winner's curse; calibration against direct numpy sums
and statsmodels' Wilson interval."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from splitlab.stats.calibration import brier, reliability, wilson
from splitlab.stats.shrinkage import james_stein, raw_total, shrunk_total

Y = np.array([0.08, 0.031, -0.012, 0.004, 0.15, -0.05, 0.02])
S = np.array([0.02, 0.01, 0.015, 0.005, 0.06, 0.03, 0.01])


def _direct(y: list[float], s: list[float]) -> list[float]:
    """The formula written out element by element, in plain Python."""
    k = len(y)
    mean = sum(y) / k
    spread = sum((v - mean) ** 2 for v in y)
    return [
        mean + (1 - min(1.0, (k - 3) * se**2 / spread)) * (v - mean)
        for v, se in zip(y, s, strict=True)
    ]


def test_matches_the_direct_formula_and_pinned_numbers() -> None:
    result = james_stein(Y, S)
    assert result.shrunk
    assert result.estimates == pytest.approx(_direct(list(Y), list(S)), rel=1e-13)
    assert result.grand_mean == pytest.approx(0.031857142857142855, rel=1e-12)
    assert result.spread == pytest.approx(0.025816857142857138, rel=1e-12)
    # pinned: B = 4 s² / S
    assert result.factors[4] == pytest.approx(4 * 0.06**2 / 0.025816857142857138, rel=1e-12)
    assert result.estimates[4] == pytest.approx(0.0841028564, rel=1e-8)
    assert result.estimates[3] == pytest.approx(0.0041079029, rel=1e-8)
    # a precise estimate keeps more of its distance from the mean than a noisy one
    assert result.factors[3] < result.factors[0] < result.factors[4]


def test_equal_errors_are_efron_morris() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(0.02, 0.05, size=12)
    sigma = 0.03
    result = james_stein(y, np.full(12, sigma))
    mean = y.mean()
    c = max(0.0, 1 - (12 - 3) * sigma**2 / np.sum((y - mean) ** 2))
    assert result.estimates == pytest.approx(mean + c * (y - mean), rel=1e-13)


def test_positive_part_and_too_few() -> None:
    flat = james_stein(np.array([0.01, 0.0, -0.01, 0.005]), np.array([0.5, 0.5, 0.5, 0.5]))
    assert np.allclose(flat.estimates, 0.00125) and np.all(flat.factors == 1)
    three = james_stein(np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.1, 0.1]))
    assert not three.shrunk and list(three.estimates) == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError):
        james_stein(np.array([0.1, np.nan]), np.array([0.1, 0.1]))
    with pytest.raises(ValueError):
        james_stein(np.array([0.1, 0.2]), np.array([0.1, 0.0]))


def test_totals_and_their_errors() -> None:
    shipped = np.array([True, True, False, False, True, False, True])
    raw = raw_total(Y, S, shipped)
    assert raw.value == pytest.approx(0.08 + 0.031 + 0.15 + 0.02)
    assert raw.se == pytest.approx(np.sqrt(0.02**2 + 0.01**2 + 0.06**2 + 0.01**2))
    assert raw.ci_low == pytest.approx(raw.value - 1.959963984540054 * raw.se, rel=1e-12)
    total, shrunk = shrunk_total(Y, S, shipped)
    assert total.value == pytest.approx(shrunk.estimates[shipped].sum(), rel=1e-13)
    # the SE from the linear weights equals the one of the explicit matrix W = D + (I − D)11ᵀ/k
    k = len(Y)
    d = np.diag(1 - shrunk.factors)
    w = d + (np.eye(k) - d) @ np.ones((k, k)) / k
    assert (w @ Y) == pytest.approx(shrunk.estimates, rel=1e-12)
    weights = shipped.astype(float) @ w
    assert total.se == pytest.approx(np.sqrt(np.sum(weights**2 * S**2)), rel=1e-12)
    assert total.value < raw.value  # the winners are pulled toward the grand mean


def test_shrinkage_undoes_the_winners_curse_in_simulation() -> None:
    """Ship the experiments whose estimate is significantly positive: the raw sum of their
    estimates overshoots their true sum; the shrunk sum is much closer on average."""
    rng = np.random.default_rng(17)
    raw_bias, shrunk_bias, raw_sq, shrunk_sq = [], [], [], []
    for _ in range(2000):
        truth = rng.normal(0.0, 0.01, size=40)
        se = rng.uniform(0.005, 0.02, size=40)
        y = truth + rng.normal(0, se)
        shipped = y / se > 1.96
        if not shipped.any():
            continue
        total, shrunk = shrunk_total(y, se, shipped)
        raw_bias.append(y[shipped].sum() - truth[shipped].sum())
        shrunk_bias.append(total.value - truth[shipped].sum())
        raw_sq.append(np.sum((y - truth) ** 2))
        shrunk_sq.append(np.sum((shrunk.estimates - truth) ** 2))
    assert np.mean(raw_bias) > 0.03  # the winner's curse
    assert abs(np.mean(shrunk_bias)) < 0.3 * np.mean(raw_bias)
    assert np.mean(shrunk_sq) < 0.6 * np.mean(raw_sq)  # and a smaller total squared error


# ---------------------------------------------------------------- calibration

P = np.array([0.9, 0.7, 0.7, 0.2, 0.55, 0.3, 0.8, 0.1, 1.0, 0.45])
OUT = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 1])


def test_brier_against_direct_sums() -> None:
    score = brier(P, OUT)
    assert score is not None
    direct = sum((p - o) ** 2 for p, o in zip(P.tolist(), OUT.tolist(), strict=True)) / len(P)
    assert score.score == pytest.approx(direct, rel=1e-14)
    assert score.score == pytest.approx(0.1275, rel=1e-12)  # pinned
    assert score.base_rate == 0.6 and score.reference == pytest.approx(0.24)
    assert score.skill == pytest.approx(1 - 0.1275 / 0.24, rel=1e-12)
    assert brier(np.array([0.5, 0.5]), np.array([1, 1])).skill is None  # type: ignore[union-attr]
    assert brier(np.array([]), np.array([])) is None
    with pytest.raises(ValueError):
        brier(np.array([1.2]), np.array([1]))
    with pytest.raises(ValueError):
        brier(np.array([0.5]), np.array([2]))


def test_reliability_bins_and_wilson() -> None:
    bins = reliability(P, OUT, bins=5)
    assert [b.n for b in bins] == [1, 2, 2, 2, 3]  # 0.2 opens the second bin, 1.0 is in the last
    top = bins[4]
    assert top.mean_forecast == pytest.approx((0.9 + 0.8 + 1.0) / 3)
    assert top.observed == 1.0
    middle = bins[2]  # 0.55 and 0.45
    assert middle.observed == 1.0 and middle.mean_forecast == pytest.approx(0.5)
    low, high = proportion_confint(1, 2, alpha=0.05, method="wilson")
    assert bins[1].observed == 0.0 and bins[1].observed_low == 0.0
    assert wilson(1, 2) == pytest.approx((low, high), rel=1e-12)
    for b in bins:
        if b.n:
            assert b.observed is not None
            lo, hi = proportion_confint(round(b.observed * b.n), b.n, method="wilson")
            assert (b.observed_low, b.observed_high) == pytest.approx((lo, hi), abs=1e-12)
    empty = reliability(np.array([0.05]), np.array([0]), bins=4)
    assert [b.n for b in empty] == [1, 0, 0, 0] and empty[1].observed is None

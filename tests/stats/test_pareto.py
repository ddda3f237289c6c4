"""The Pareto frontier with uncertainty (``stats.pareto``) against a direct, loop-by-loop
reading of its definition, on random cases with missing values and exact numbers, and on a
hand-worked case with pinned results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splitlab.stats.pareto import pareto_frontier


def direct(e: np.ndarray, se: np.ndarray, crit: float) -> tuple[list[bool], list[list[bool]]]:
    """The definition, one pair and one objective at a time."""
    k, m = e.shape
    dom = [[False] * k for _ in range(k)]
    for b in range(k):
        for a in range(k):
            if a == b:
                continue
            shared = 0
            ok = True
            sig = False
            for j in range(m):
                nb, na = math.isnan(e[b, j]), math.isnan(e[a, j])
                if nb and na:
                    continue
                if nb != na:
                    ok = False
                    break
                shared += 1
                if e[b, j] < e[a, j]:
                    ok = False
                    break
                pooled = math.sqrt(se[b, j] ** 2 + se[a, j] ** 2)
                if math.isnan(pooled):
                    continue
                if e[b, j] - e[a, j] > crit * pooled:
                    sig = True
            dom[b][a] = ok and shared > 0 and sig
    dominated = [any(dom[b][a] for b in range(k)) for a in range(k)]
    return dominated, dom


def test_a_worked_case_pinned() -> None:
    # rows: control A, B better on quality, C dearer, D best quality but dearer than B,
    # E without a quality number
    e = np.array(
        [
            [0.00, 0.0, 0.0],
            [0.02, 0.0, 0.0],
            [0.01, -1.0, 0.0],
            [0.03, -0.5, 0.0],
            [np.nan, 0.0, 0.0],
        ]
    )
    se = np.array(
        [
            [0.0, 0.0, 0.0],
            [0.005, 0.0, 0.01],
            [0.01, 0.0, 0.01],
            [0.005, 0.0, 0.01],
            [np.nan, 0.0, 0.01],
        ]
    )
    result = pareto_frontier(e, se, crit=1.959963984540054)
    assert result.dominated.tolist() == [True, False, True, False, False]
    # C is dominated by B and by D (each better on cost only, significantly: listed
    # prices are exact); B's quality lead over C (0.01) is not significant
    # (1.96·√(0.005² + 0.01²) = 0.0219), so both win once: the first is named
    assert result.dominated_by.tolist() == [1, -1, 1, -1, -1]
    assert result.dominates[1, 0] and result.dominates[1, 2] and result.dominates[3, 2]
    assert not result.dominates[3, 1] and not result.dominates[1, 3]


def test_not_significant_is_not_dominated() -> None:
    # B ahead everywhere, but by less than the crit × pooled SE: both stay on the frontier
    e = np.array([[0.0, 0.0], [0.01, 0.01]])
    se = np.array([[0.0, 0.0], [0.01, 0.01]])
    assert pareto_frontier(e, se, crit=1.96).dominated.tolist() == [False, False]
    assert pareto_frontier(e, se, crit=0.5).dominated.tolist() == [True, False]


@pytest.mark.parametrize("seed", range(25))
def test_matches_the_definition_on_random_cases(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k, m = int(rng.integers(2, 9)), 3
    e = np.round(rng.normal(size=(k, m)), 1)  # ties happen
    se = np.abs(rng.normal(scale=0.3, size=(k, m)))
    se[rng.random((k, m)) < 0.2] = 0.0  # exact numbers
    e[rng.random((k, m)) < 0.15] = np.nan
    se[rng.random((k, m)) < 0.05] = np.nan  # an unknown SE never makes a win significant
    crit = float(rng.choice([0.0, 1.0, 1.96]))
    dominated, dom = direct(e, se, crit)
    result = pareto_frontier(e, se, crit=crit)
    assert result.dominated.tolist() == dominated
    assert result.dominates.tolist() == dom
    for a, by in enumerate(result.dominated_by.tolist()):
        assert (by == -1) == (not dominated[a])
        if by >= 0:
            assert dom[by][a]


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        pareto_frontier(np.zeros((2, 3)), np.zeros((2, 2)), crit=1.0)
    with pytest.raises(ValueError):
        pareto_frontier(np.zeros(3), np.zeros(3), crit=1.0)
    with pytest.raises(ValueError):
        pareto_frontier(np.zeros((2, 3)), np.zeros((2, 3)), crit=-1.0)

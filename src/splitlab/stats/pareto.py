"""Pareto dominance with uncertainty: which configurations are on the frontier of several
objectives when each estimate carries a standard error.

Estimates are oriented so that *higher is better* on every objective (negate a cost or a
latency first).  Configuration ``b`` dominates ``a`` when

* on every objective both have, ``b``'s estimate is at least ``a``'s (point estimates), and
* on at least one of them ``b`` is *significantly* better:
  ``e_b − e_a > crit · √(se_a² + se_b²)``.

``√(se_a² + se_b²)`` is conservative for estimates that are differences from one shared
control (their covariance is positive, so the true SE of ``e_b − e_a`` is smaller): a
dominance it declares holds at least at the stated level.  A standard error of 0 marks a
known, exact number (a listed price), where any strict improvement counts as significant.

An objective missing (NaN) for both is ignored; missing for only one of the two, the pair is
not comparable on it and neither dominates the other.  A pair with no shared objective is
never dominated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ParetoResult:
    """Per configuration: whether it is dominated, and by which (−1: on the frontier)."""

    dominated: BoolArray
    """True when another configuration dominates it."""
    dominated_by: IntArray
    """The index of the first configuration dominating it (the strongest by count of
    significant wins), −1 on the frontier."""
    dominates: BoolArray
    """``dominates[b, a]``: configuration ``b`` dominates ``a``."""


def pareto_frontier(
    estimates: npt.ArrayLike, standard_errors: npt.ArrayLike, *, crit: float
) -> ParetoResult:
    """The frontier of ``k`` configurations on ``m`` objectives (arrays of shape (k, m),
    higher is better) with significance at ``crit`` (e.g. 1.96 for 95%); see the module
    docstring for the rule."""
    e = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(standard_errors, dtype=np.float64)
    if e.ndim != 2 or e.shape != se.shape:
        raise ValueError("estimates and standard errors must both have shape (k, m)")
    if crit < 0 or not np.isfinite(crit):
        raise ValueError("crit must be a finite number ≥ 0")
    k = e.shape[0]
    eb, ea = e[:, None, :], e[None, :, :]  # [b, a, m]
    present_b, present_a = ~np.isnan(eb), ~np.isnan(ea)
    both = present_b & present_a
    neither = ~present_b & ~present_a
    with np.errstate(invalid="ignore"):
        diff = eb - ea
        pooled = np.sqrt(se[:, None, :] ** 2 + se[None, :, :] ** 2)
        at_least = np.where(both, diff >= 0, neither)
        significant = both & (diff > crit * np.nan_to_num(pooled, nan=np.inf))
    comparable = np.all(both | neither, axis=-1) & np.any(both, axis=-1)
    dominates = comparable & np.all(at_least, axis=-1) & np.any(significant, axis=-1)
    dominates[np.arange(k), np.arange(k)] = False
    dominated = dominates.any(axis=0)
    wins = significant.sum(axis=-1)  # [b, a]
    strength = np.where(dominates, wins, -1)
    dominated_by = np.where(dominated, np.argmax(strength, axis=0), -1).astype(np.int64)
    return ParetoResult(dominated=dominated, dominated_by=dominated_by, dominates=dominates)

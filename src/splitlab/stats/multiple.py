"""Multiple-comparison adjustments: adjusted p-values along the last axis.

Each function takes p-values of shape (..., m) — one family of m hypotheses per leading
index — and returns adjusted p-values of the same shape, capped at 1, in the input order.
They match ``statsmodels.stats.multitest.multipletests`` (methods "bonferroni", "holm",
"fdr_bh").  NaN p-values are not allowed within a family (they would have no rank).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from splitlab.stats.aggregates import FloatArray, as_float


def bonferroni(p: npt.ArrayLike) -> FloatArray:
    """Bonferroni: p̃ᵢ = min(1, m·pᵢ) (controls the family-wise error rate)."""
    values = as_float(p)
    return np.minimum(values * values.shape[-1], 1.0)


def _step(p: npt.ArrayLike, *, down: bool) -> FloatArray:
    values = as_float(p)
    m = values.shape[-1]
    order = np.argsort(values, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(values, order, axis=-1)
    rank = np.arange(1, m + 1, dtype=np.float64)
    if down:  # Holm: max over ranks ≤ i of (m − j + 1)·p₍ⱼ₎
        adjusted = np.maximum.accumulate(sorted_p * (m - rank + 1), axis=-1)
    else:  # Benjamini–Hochberg: min over ranks ≥ i of m·p₍ⱼ₎/j
        adjusted = np.minimum.accumulate((sorted_p * m / rank)[..., ::-1], axis=-1)[..., ::-1]
    adjusted = np.minimum(adjusted, 1.0)
    result = np.empty_like(adjusted)
    np.put_along_axis(result, order, adjusted, axis=-1)
    return result


def holm(p: npt.ArrayLike) -> FloatArray:
    """Holm step-down: p̃₍ᵢ₎ = min(1, max_{j ≤ i} (m − j + 1) p₍ⱼ₎) (controls the FWER)."""
    return _step(p, down=True)


def benjamini_hochberg(p: npt.ArrayLike) -> FloatArray:
    """Benjamini–Hochberg step-up: p̃₍ᵢ₎ = min(1, min_{j ≥ i} m p₍ⱼ₎ / j) (controls the FDR)."""
    return _step(p, down=False)

"""Sample-ratio mismatch: does the observed split of units match the configured weights?"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.stats.aggregates import FloatArray, as_float

#: p-values below this flag a sample-ratio mismatch (a strict level: SRM checks run often).
SRM_P_THRESHOLD: Final = 0.001


class SrmResult(NamedTuple):
    """Pearson χ² goodness-of-fit statistic and p-value; unpacks as ``(chi2, p_value)``."""

    chi2: FloatArray
    p_value: FloatArray

    @property
    def detected(self) -> npt.NDArray[np.bool_]:
        """True where p < ``SRM_P_THRESHOLD`` (0.001)."""
        return np.asarray(self.p_value < SRM_P_THRESHOLD)


def srm_test(observed_counts: npt.ArrayLike, expected_weights: npt.ArrayLike) -> SrmResult:
    """χ² test of observed unit counts against expected traffic weights, along the last axis.

    Eᵢ = N · wᵢ / Σw,  χ² = Σ (Oᵢ − Eᵢ)² / Eᵢ,  p = P(χ²_{k−1} > χ²)  (= ``scipy.stats.chisquare``).
    Zero total count gives NaN (there is nothing to test).
    """
    observed = as_float(observed_counts)
    weights = as_float(expected_weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.sum(observed, axis=-1, keepdims=True)
        expected = total * weights / np.sum(weights, axis=-1, keepdims=True)
        chi2 = np.sum((observed - expected) ** 2 / expected, axis=-1)
        k = np.broadcast_shapes(observed.shape, weights.shape)[-1]
        p_value = special.chdtrc(k - 1, chi2)
    return SrmResult(chi2, p_value)

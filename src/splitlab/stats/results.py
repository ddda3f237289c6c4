"""Result types and reason codes shared by every test.

A reason is a short string naming why a comparison's numbers are NaN (or, for
``ZERO_CONTROL_MEAN``, why only its relative numbers are NaN).  Functions compute an integer
code per comparison and turn it into a string array with :func:`reason_array`, so a batch of a
million comparisons never raises and never silently returns a wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
StrArray = npt.NDArray[np.str_]
Alternative = Literal["two-sided", "greater", "less"]
MarginType = Literal["absolute", "relative"]

OK: Final = ""
N_BELOW_2: Final = "n_below_2"
INVALID_COUNTS: Final = "invalid_counts"
ZERO_VARIANCE: Final = "zero_variance"
ZERO_CONTROL_MEAN: Final = "zero_control_mean"
ZERO_DENOMINATOR: Final = "zero_denominator_mean"
NON_POSITIVE_INPUT: Final = "non_positive_input"
EMPTY_INTERVAL: Final = "empty_order_statistic_interval"

#: All reason codes, indexed by their integer code; earlier entries take precedence.
REASONS: Final[tuple[str, ...]] = (
    OK,
    N_BELOW_2,
    INVALID_COUNTS,
    ZERO_DENOMINATOR,
    EMPTY_INTERVAL,
    NON_POSITIVE_INPUT,
    ZERO_VARIANCE,
    ZERO_CONTROL_MEAN,
)
_REASON_ARRAY = np.array(REASONS)
CODE = {reason: code for code, reason in enumerate(REASONS)}


def reason_codes(shape: tuple[int, ...], *conditions: tuple[str, npt.ArrayLike]) -> np.ndarray:
    """Integer reason code per comparison: the first (most severe) true condition wins.

    ``conditions`` are ``(reason, boolean array)`` pairs; ``REASONS`` order decides severity.
    """
    codes = np.zeros(shape, dtype=np.int8)
    for reason, mask in sorted(conditions, key=lambda item: -CODE[item[0]]):
        codes = np.where(np.broadcast_to(mask, shape), np.int8(CODE[reason]), codes)
    return codes


def reason_array(codes: np.ndarray) -> StrArray:
    """Map integer reason codes to their strings (same shape)."""
    return np.asarray(_REASON_ARRAY[codes], dtype=_REASON_ARRAY.dtype)


def check_alternative(alternative: str) -> None:
    """Raise ``ValueError`` for an unknown ``alternative`` (an option error, not a data error)."""
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(
            f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}"
        )


@dataclass(frozen=True, eq=False)
class TestResult:
    """Outcome of a two-arm comparison; every field is an array of the broadcast shape.

    Attributes:
        control_mean, treatment_mean: arm estimates (adjusted for CUPED, R = Σnum/Σden for ratios).
        abs_effect: treatment − control, with CI ``abs_ci_low`` … ``abs_ci_high``.
        rel_effect: treatment / control − 1, with delta-method CI ``rel_ci_low`` … ``rel_ci_high``.
            One-sided tests give a one-sided CI (the other bound is ±inf).
        statistic: z or t statistic (including any non-inferiority margin).
        p_value: p-value for ``alternative``.
        df: degrees of freedom of the t reference distribution; NaN for z tests.
        reason: "" when the comparison is valid, otherwise a reason code (see ``REASONS``).
    """

    __test__ = False  # not a pytest test class, despite the name

    control_mean: FloatArray
    treatment_mean: FloatArray
    abs_effect: FloatArray
    abs_ci_low: FloatArray
    abs_ci_high: FloatArray
    rel_effect: FloatArray
    rel_ci_low: FloatArray
    rel_ci_high: FloatArray
    statistic: FloatArray
    p_value: FloatArray
    df: FloatArray
    reason: StrArray


@dataclass(frozen=True, eq=False)
class CupedResult(TestResult):
    """:class:`TestResult` of a CUPED test plus the adjustment it made.

    Attributes:
        theta: θ = cov(x, y) / var(x) on the pooled arms.
        variance_reduction: 1 − Var(adjusted effect) / Var(unadjusted effect) (≈ ρ²).
    """

    theta: FloatArray
    variance_reduction: FloatArray

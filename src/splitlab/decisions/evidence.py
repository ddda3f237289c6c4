"""The numbers the decision engine reads from a snapshot, as arrays: one entry per overall
(or segment) comparison, with the always-valid interval beside the snapshot's own.

Vectorised on purpose: the engine decides a fleet of experiments per refresh, so a snapshot's
comparisons are converted in a handful of numpy calls, not row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from splitlab.analysis.snapshot import ResultRow, Snapshot
from splitlab.domain import Engine
from splitlab.stats.sequential import cs_halfwidth_factor, cs_rho_squared

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MetricInfo:
    """A metric of the experiment as the snapshot's settings describe it."""

    key: str
    name: str
    role: str
    margin: float | None
    higher_is_better: bool

    @property
    def sign(self) -> float:
        """+1 when higher is better, −1 when lower is better."""
        return 1.0 if self.higher_is_better else -1.0


def metric_infos(snapshot: Snapshot) -> dict[str, MetricInfo]:
    """The snapshot's metrics (from ``settings``), keyed by metric key, in plan order."""
    out: dict[str, MetricInfo] = {}
    for entry in snapshot.settings.get("metrics", []):
        definition = entry.get("definition", {})
        key = str(definition.get("key", ""))
        out[key] = MetricInfo(
            key=key,
            name=str(definition.get("name") or key),
            role=str(entry.get("role", "secondary")),
            margin=entry.get("margin"),
            higher_is_better=definition.get("direction", "increase") != "decrease",
        )
    return out


_COLUMNS = (
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "rel_effect",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "p_value_adjusted",
    "control_n",
    "treatment_n",
    "df",
)


def _table(rows: Sequence[ResultRow]) -> FloatArray:
    """One row of ``_COLUMNS`` per comparison, transposed (None → NaN), in one pass."""
    nan = float("nan")
    values = [[nan if (v := getattr(r, name)) is None else v for name in _COLUMNS] for r in rows]
    return np.array(values, dtype=np.float64).reshape(len(rows), len(_COLUMNS)).T


@dataclass(frozen=True)
class Comparisons:
    """Per comparison arrays (aligned with ``rows``); ``av_*`` are always-valid bounds."""

    rows: tuple[ResultRow, ...]
    abs_effect: FloatArray
    abs_low: FloatArray
    abs_high: FloatArray
    rel_effect: FloatArray
    rel_low: FloatArray
    rel_high: FloatArray
    p_value: FloatArray
    p_adjusted: FloatArray
    control_n: FloatArray
    treatment_n: FloatArray
    se: FloatArray
    av_rel_low: FloatArray
    av_rel_high: FloatArray
    av_p: FloatArray
    av_abs_low: FloatArray
    av_abs_high: FloatArray

    def __len__(self) -> int:
        return len(self.rows)


def comparisons(
    rows: Sequence[ResultRow], *, engine: Engine, alpha: float, tuning: float
) -> Comparisons:
    """The arrays of ``rows``, with always-valid intervals and p-values.

    The standard error of the absolute effect is recovered from the snapshot's interval
    (half-width / the t or z quantile at ``1 − α/2``).  Fixed-horizon intervals are widened
    to the asymptotic confidence sequence of :func:`splitlab.stats.sequential_test` (the same
    multiplier, tightest at ``tuning`` units), which holds at every look — so a check repeated
    on each refresh does not inflate false stops.  Sequential-engine results are always valid
    already and kept as they are.  Relative bounds are widened about the point estimate by the
    same ratio on each side (asymmetric Fieller/log intervals keep their shape)."""
    rows = tuple(rows)
    table = _table(rows)
    abs_effect, abs_low, abs_high, rel_effect, rel_low, rel_high = table[:6]
    p_value, p_adjusted, control_n, treatment_n, df = table[6:]
    p_adjusted = np.where(np.isnan(p_adjusted), p_value, p_adjusted)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z_crit = float(special.ndtri(1.0 - alpha / 2.0))
        crit = np.where(
            np.isfinite(df),
            special.stdtrit(np.where(np.isfinite(df), df, 1.0), 1.0 - alpha / 2.0),
            z_crit,
        )
        se = (abs_high - abs_low) / (2.0 * crit)
        if engine is Engine.SEQUENTIAL:
            return Comparisons(
                rows, abs_effect, abs_low, abs_high, rel_effect, rel_low, rel_high,
                p_value, p_adjusted, control_n, treatment_n, se, rel_low, rel_high, p_value,
                abs_low, abs_high,
            )  # fmt: skip
        n_total = control_n + treatment_n
        factor = cs_halfwidth_factor(n_total, alpha, tuning)
        scale = factor / crit
        av_rel_low = rel_effect - (rel_effect - rel_low) * scale
        av_rel_high = rel_effect + (rel_high - rel_effect) * scale
        av_abs_low = abs_effect - (abs_effect - abs_low) * scale
        av_abs_high = abs_effect + (abs_high - abs_effect) * scale
        z = abs_effect / se
        a = n_total * cs_rho_squared(alpha, tuning)
        av_p = np.minimum(1.0, np.sqrt(a + 1.0) * np.exp(-z * z * a / (2.0 * (a + 1.0))))
    return Comparisons(
        rows, abs_effect, abs_low, abs_high, rel_effect, rel_low, rel_high,
        p_value, p_adjusted, control_n, treatment_n, se, av_rel_low, av_rel_high, av_p,
        av_abs_low, av_abs_high,
    )  # fmt: skip


def stated(row: ResultRow, name: str) -> tuple[float, str] | None:
    """A threshold the analysis put on the row (``margin`` or ``min_lift``, with its
    ``…_scale``: ``relative`` or ``absolute``), or None when the row has none."""
    value = getattr(row, name, None)
    if value is None:
        return None
    scale = getattr(row, f"{name}_scale", None)
    return float(value), str(getattr(scale, "value", scale) or "relative")


def z_quantile(alpha: float) -> float:
    """z at ``1 − α/2``."""
    return float(special.ndtri(1.0 - alpha / 2.0))


def finite(value: Any) -> float | None:
    """A float, or None for None / NaN / ±inf (JSON-safe evidence)."""
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None

"""Expected results computed directly: per-unit values → numpy → splitlab.stats."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import numpy as np

from splitlab import stats
from splitlab.domain import MetricDefinition
from splitlab.warehouse.queries import MISSING, OTHER
from tests.analysis.builders import Dataset, Unit, per_unit


def segment_labels(units: list[Unit], name: str, top_n: int) -> dict[str, str]:
    """unit_id → label, with the top-N values by unit count (ties: value order) kept."""
    raw = {u.unit_id: str(u.attributes.get(name, MISSING)) for u in units}
    counts = Counter(raw.values())
    ranked = sorted(counts, key=lambda v: (-counts[v], v))[:top_n]
    return {uid: value if value in ranked else OTHER for uid, value in raw.items()}


def expected_test(
    dataset: Dataset,
    metric: MetricDefinition,
    units: list[Unit],
    control: str,
    treatment: str,
    alpha: float = 0.05,
) -> tuple[Any, float, float]:
    """(TestResult, n_control, n_treatment) of ``metric`` on the given units."""
    values = per_unit(dataset, metric)

    def arm(variant: str) -> tuple[np.ndarray, np.ndarray]:
        pairs = [values[u.unit_id] for u in units if u.variant == variant]
        if metric.kind == "quantile":
            pairs = [p for p in pairs if p[0] is not None]
        y = np.array([p[0] for p in pairs], dtype=float)
        x = np.array([p[1] if p[1] is not None else 0.0 for p in pairs], dtype=float)
        return y, x

    (yc, xc), (yt, xt) = arm(control), arm(treatment)
    if metric.kind == "quantile":
        assert metric.quantile is not None
        result = stats.quantile_test(
            stats.QuantileStats.from_values(yc, metric.quantile),
            stats.QuantileStats.from_values(yt, metric.quantile),
            alpha=alpha,
        )
    elif metric.kind == "ratio":
        result = stats.ratio_test(
            stats.RatioStats.from_values(yc, xc), stats.RatioStats.from_values(yt, xt), alpha=alpha
        )
    elif metric.cuped_days > 0:
        result = stats.cuped_test(
            stats.CovariateStats.from_values(yc, xc),
            stats.CovariateStats.from_values(yt, xt),
            alpha=alpha,
        )
    elif metric.kind == "binary":
        result = stats.ztest_proportions(
            stats.SampleStats.from_values(yc), stats.SampleStats.from_values(yt), alpha=alpha
        )
    else:
        result = stats.welch_ttest(
            stats.SampleStats.from_values(yc), stats.SampleStats.from_values(yt), alpha=alpha
        )
    return result, float(yc.size), float(yt.size)


def units_until(units: list[Unit], day: date) -> list[Unit]:
    return [u for u in units if u.exposed_at.date() <= day]

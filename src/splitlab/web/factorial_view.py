"""The interaction plot of a factorial experiment's page: the primary metric's cell means
(read from the snapshot, nothing recomputed) with the first factor on the x-axis and one line
per level of the second — parallel lines mean no interaction.  With more than two factors
each point averages the cells over the other factors' levels.  The ANOVA table itself is
``GET /api/experiments/{key}/factorial`` (linked from the figure)."""

from __future__ import annotations

from typing import Any

from splitlab.analysis.snapshot import Snapshot
from splitlab.domain import ExperimentSpec
from splitlab.domain.factorial import NotFactorialError, factorial_design, is_factorial


def _cell_means(snapshot: Snapshot, metric: str, control: str) -> dict[str, float | None]:
    """Each variant's raw mean of ``metric`` from the overall results rows."""
    means: dict[str, float | None] = {}
    for row in snapshot.overall():
        if row.metric != metric:
            continue
        means[control] = row.control_mean
        means[row.variant] = row.treatment_mean
    return means


def interaction_plot(snapshot: Snapshot, spec: ExperimentSpec) -> dict[str, Any] | None:
    """``{metric, x_factor, line_factor, x, lines: [{name, y}], averaged}`` for a factorial
    experiment's primary metric, or None (not factorial, or no means yet)."""
    if not is_factorial([v.payload for v in spec.variants]):
        return None
    try:
        design = factorial_design([(v.key, v.payload, v.is_control) for v in spec.variants])
    except NotFactorialError:
        return None
    metric = spec.metrics.primary
    control = next(v.key for v in spec.variants if v.is_control)
    means = _cell_means(snapshot, str(metric), control)
    if design.k < 2 or any(means.get(v) is None for v in design.signs):
        return None
    first, second = design.factors[0], design.factors[1]
    lines = []
    for line_sign, line_level in ((-1, second.low), (1, second.high)):
        y = []
        for x_sign in (-1, 1):
            picked = [
                means[v]
                for v, signs in design.signs.items()
                if signs[0] == x_sign and signs[1] == line_sign
            ]
            values = [m for m in picked if m is not None]
            y.append(sum(values) / len(values))
        lines.append({"name": f"{second.name} = {line_level}", "y": y})
    return {
        "metric": metric,
        "x_factor": first.name,
        "line_factor": second.name,
        "x": [first.low, first.high],
        "lines": lines,
        "averaged": [f.name for f in design.factors[2:]],
    }

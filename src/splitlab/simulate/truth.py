"""The ground truth of a scenario: each metric's true value per variant, overall and per
segment, with absolute and relative effects against control.

Binary, count, sum and ratio metrics without capping are *exact*: the model's expectation
summed over every (attribute combination × arrival day) cell with its probability, the
unit frailty integrated by Gauss–Hermite quadrature. Capped and quantile metrics have no
closed form; they are estimated by Monte Carlo on a separate population of
``MONTE_CARLO_UNITS`` units per variant (``method: monte_carlo``), precise enough that their
noise is small next to any run's confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from splitlab.domain import ExperimentSpec, MetricDefinition, MetricKind
from splitlab.simulate import model
from splitlab.simulate.scenario import Scenario, segment_cells

FloatArray = npt.NDArray[np.float64]
MONTE_CARLO_UNITS = 300_000
QUADRATURE_NODES = 48


def _exact(metric: MetricDefinition) -> bool:
    return metric.capping is None and metric.kind is not MetricKind.QUANTILE


def _summary(values: list[float], control: int, variants: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = values[control]
    for v, name in enumerate(variants):
        entry: dict[str, Any] = {"mean": float(values[v])}
        if v != control:
            entry["abs_effect"] = float(values[v] - base)
            entry["rel_effect"] = float(values[v] / base - 1.0) if base else None
        out[name] = entry
    return out


class _Cells:
    """Every (attribute combination, arrival day) with its probability, as rows."""

    def __init__(self, scenario: Scenario, days: int) -> None:
        combos = segment_cells(scenario)
        day_p = np.array(scenario.arrival.day_weights(days))
        n_combo = len(combos)
        combo_p = np.ones(n_combo)
        self.codes: dict[str, npt.NDArray[np.int64]] = {}
        for name, shares in scenario.attributes.items():
            values = list(shares)
            p = np.array([shares[v] for v in values], dtype=float)
            p /= p.sum()
            code = np.array([values.index(c[name]) for c in combos], dtype=np.int64)
            combo_p *= p[code]
            self.codes[name] = np.repeat(code, days)
        self.weight = np.repeat(combo_p, days) * np.tile(day_p, n_combo)
        self.observed = np.tile(np.arange(days, 0, -1, dtype=np.int64), n_combo)
        self.rows = n_combo * days


def _quadrature(heterogeneity: float) -> tuple[FloatArray, FloatArray]:
    if heterogeneity == 0:
        return np.ones(1), np.ones(1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    return model.frailty(nodes, heterogeneity), weights / weights.sum()


def _expectations(
    scenario: Scenario, cells: _Cells, variant: int, days: int
) -> Callable[[str, str], FloatArray]:
    """``expect(stream, what)``: per-cell expectation of ``count``, ``any`` (at least one
    event), or the mean of ``value`` / a field, for one variant."""
    f, w = _quadrature(scenario.heterogeneity)
    vidx = np.full(cells.rows, variant, np.int64)

    def expect(name: str, what: str) -> FloatArray:
        stream = scenario.streams[name]
        if what not in ("count", "any"):
            base = model.base_value(stream, what)
            return base * model.static_multiplier(scenario, name, what, vidx, cells.codes)
        daily = model.daily_rates(scenario, name, vidx, cells.codes, days)
        rate = (
            stream.rate
            * model.static_multiplier(scenario, name, "rate", vidx, cells.codes)
            * daily.mean_factor(cells.observed)
        )
        scaled = rate[:, None] * f[None, :]
        if stream.occurrence == "once":
            return np.minimum(scaled, 1.0) @ w
        if what == "count":
            return rate
        return (1.0 - np.exp(-scaled)) @ w

    return expect


def _exact_metric(
    metric: MetricDefinition, expect: Callable[[str, str], FloatArray]
) -> tuple[FloatArray, FloatArray]:
    """Per-cell numerator and denominator whose weighted sums' ratio is the metric."""
    value = metric.value_field or "value"
    if metric.kind is MetricKind.BINARY:
        num = expect(metric.event, "any")
    elif metric.kind is MetricKind.COUNT:
        num = expect(metric.event, "count")
    else:
        num = expect(metric.event, "count") * expect(metric.event, value)
    if metric.kind is MetricKind.RATIO:
        assert metric.denominator_event is not None
        return num, expect(metric.denominator_event, "count")
    return num, np.ones_like(num)


def _monte_carlo(
    scenario: Scenario, spec: ExperimentSpec, metric: MetricDefinition, days: int, seed: int
) -> tuple[list[FloatArray], list[npt.NDArray[np.bool_]], dict[str, npt.NDArray[np.int64]]]:
    """Per-variant per-unit metric values on one Monte Carlo population (capping applied as
    the analysis applies it), a mask of the units that count, and the attribute codes."""
    from splitlab.simulate.generator import draw_population, draw_stream

    rng = np.random.default_rng([seed, 7919])
    m = MONTE_CARLO_UNITS
    population = draw_population(scenario, rng, m, days)
    per_variant: list[FloatArray] = []
    counted: list[npt.NDArray[np.bool_]] = []
    for v in range(len(spec.variants)):
        variant = np.full(m, v, np.int64)
        draw = draw_stream(
            scenario,
            metric.event,
            population,
            variant,
            days,
            rng,
            timed=False,
            only=metric.value_field or "value",
        )
        count = np.bincount(draw.unit, minlength=m).astype(float)
        values = draw.fields[metric.value_field] if metric.value_field else draw.value
        total = np.bincount(draw.unit, weights=values, minlength=m) if values is not None else count
        if metric.kind is MetricKind.QUANTILE:
            with np.errstate(invalid="ignore", divide="ignore"):
                per_variant.append(total / count)
            counted.append(count > 0)
            continue
        y = {MetricKind.BINARY: (count > 0).astype(float), MetricKind.COUNT: count}.get(
            metric.kind, total
        )
        per_variant.append(y)
        counted.append(np.ones(m, np.bool_))
    if metric.capping is not None:
        if metric.capping.type == "absolute":
            cap = metric.capping.value
        else:  # the percentile of all units of the experiment, variants pooled by weight
            arm = rng.choice(len(spec.variants), size=m, p=[v.weight for v in spec.variants])
            pooled = np.choose(arm, per_variant)
            cap = float(np.quantile(pooled, metric.capping.value))
        per_variant = [np.minimum(y, cap) for y in per_variant]
    return per_variant, counted, population.codes


def _mc_value(metric: MetricDefinition, y: FloatArray, mask: npt.NDArray[np.bool_]) -> float:
    if metric.kind is MetricKind.QUANTILE:
        assert metric.quantile is not None
        return float(np.quantile(y[mask], metric.quantile)) if mask.any() else float("nan")
    return float(y[mask].mean()) if mask.any() else float("nan")


def compute_truth(
    scenario: Scenario, *, spec: ExperimentSpec, days: int, seed: int
) -> dict[str, Any]:
    """``{"metrics": {key: {kind, method, direction, overall, segments}}, …}``: per variant
    the true ``mean`` and, for treatments, ``abs_effect`` and ``rel_effect``; ``segments``
    maps each attribute and value to the same per-variant figures."""
    variants = [v.key for v in spec.variants]
    control = next(i for i, v in enumerate(spec.variants) if v.is_control)
    cells = _Cells(scenario, days)
    expectations = [_expectations(scenario, cells, v, days) for v in range(len(variants))]
    metrics: dict[str, Any] = {}
    for metric in scenario.metrics:
        entry: dict[str, Any] = {
            "kind": metric.kind.value,
            "direction": metric.direction.value,
            "method": "exact" if _exact(metric) else "monte_carlo",
        }
        segments: dict[str, dict[str, Any]] = {}
        if _exact(metric):
            parts = [_exact_metric(metric, e) for e in expectations]

            def value(
                mask: npt.NDArray[np.bool_], parts: list[tuple[FloatArray, FloatArray]] = parts
            ) -> list[float]:
                wt = cells.weight * mask
                return [float(np.sum(wt * num) / np.sum(wt * den)) for num, den in parts]

            entry["overall"] = _summary(value(np.ones(cells.rows, np.bool_)), control, variants)
            for name, shares in scenario.attributes.items():
                segments[name] = {
                    label: _summary(value(cells.codes[name] == i), control, variants)
                    for i, label in enumerate(shares)
                }
        else:
            ys, masks, codes = _monte_carlo(scenario, spec, metric, days, seed)
            entry["monte_carlo_units"] = MONTE_CARLO_UNITS
            entry["overall"] = _summary(
                [_mc_value(metric, y, k) for y, k in zip(ys, masks, strict=True)],
                control,
                variants,
            )
            for name, shares in scenario.attributes.items():
                segments[name] = {
                    label: _summary(
                        [
                            _mc_value(metric, y, k & (codes[name] == i))
                            for y, k in zip(ys, masks, strict=True)
                        ],
                        control,
                        variants,
                    )
                    for i, label in enumerate(shares)
                }
        entry["segments"] = segments
        metrics[metric.key] = entry
    return {
        "scenario": scenario.name,
        "experiment": spec.key,
        "description": scenario.description,
        "days": days,
        "control": variants[control],
        "variants": variants,
        "primary": spec.metrics.primary,
        "expect": scenario.expect,
        "metrics": metrics,
    }


def concurrent_truth(truth: dict[str, Any], other: ExperimentSpec) -> dict[str, Any]:
    """The interaction truth of a scenario with a concurrent experiment ``other``, from the
    joint model's truth (``compute_truth`` of ``Scenario.joint()``, where ``segments[other
    key]`` holds the experiment's figures among the units of each of its arms):
    ``{experiment, control, variants, interaction: {metric: {variant: {arm: effect in arm −
    effect in other's control}}}}`` on the absolute scale."""
    arms = [v.key for v in other.variants]
    control = next(v.key for v in other.variants if v.is_control)
    interaction: dict[str, Any] = {}
    for key, entry in truth["metrics"].items():
        within = entry["segments"][other.key]
        interaction[key] = {
            variant: {
                arm: float(
                    within[arm][variant]["abs_effect"] - within[control][variant]["abs_effect"]
                )
                for arm in arms
                if arm != control
            }
            for variant in truth["variants"]
            if variant != truth["control"]
        }
    return {
        "experiment": other.key,
        "control": control,
        "variants": arms,
        "interaction": interaction,
    }

"""Aggregates → statistics: one stats call per test family, vectorised over
metrics × cells (overall, segments, days) × treatments.

Every metric kind is first tested with its own fixed-horizon test (z for proportions, Welch,
CUPED, delta-method ratio, quantile).  The sequential and Bayesian engines work on each arm's
estimate and the variance of that estimate, so every kind is *linearised* to a
:class:`~splitlab.stats.SampleStats` with the same mean and per-unit variance
(Σy = n·m, Σy² = (n − 1)·n·v + n·m²) and passed to ``sequential_test`` / ``bayesian_test``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from splitlab import stats
from splitlab.analysis.aggregates import RANK_ALPHA, Aggregates
from splitlab.analysis.plan import AnalysisPlan, PlannedMetric
from splitlab.analysis.snapshot import (
    DailyPoint,
    HeterogeneityTest,
    OmnibusTest,
    ResultRow,
    Segment,
)
from splitlab.domain import (
    BinaryTest,
    Correction,
    Engine,
    MetricKind,
    MetricRole,
    RelativeInterval,
)
from splitlab.stats.relative import RelativeMethod
from splitlab.warehouse.columns import (
    UNITS,
    covariate_cross,
    covariate_sum,
    metric_columns,
    outcome_covariate_cross,
    pre_period_covariate_cross,
)
from splitlab.warehouse.queries import uses_cuped

FloatArray = npt.NDArray[np.float64]
TEST_FIELDS = (
    "control_mean",
    "treatment_mean",
    "abs_effect",
    "abs_ci_low",
    "abs_ci_high",
    "rel_effect",
    "rel_ci_low",
    "rel_ci_high",
    "statistic",
    "p_value",
    "df",
)


def number(value: Any) -> float | None:
    """A JSON-safe float: NaN and ±inf become None."""
    result = float(value)
    return result if math.isfinite(result) else None


def family(kind: MetricKind, cuped: bool, binary_test: BinaryTest = BinaryTest.Z) -> str:
    """The test family of a metric: binary metrics without a covariate take the plan's
    ``binary_test`` (``binary`` z-test, or ``mean``: Welch on the 0/1 values)."""
    if kind is MetricKind.BINARY:
        if cuped:
            return "binary_cuped"
        return "binary" if binary_test is BinaryTest.Z else "mean"
    if kind in (MetricKind.COUNT, MetricKind.SUM):
        return "mean_cuped" if cuped else "mean"
    return kind.value


@dataclass
class FamilyResult:
    """Results of one test family; every array has shape (metrics, cells, treatments)."""

    metrics: list[int]
    test: stats.TestResult
    control_n: FloatArray
    treatment_n: FloatArray
    control_var: FloatArray
    treatment_var: FloatArray
    variance_reduction: FloatArray | None
    sequential: stats.TestResult | None = None
    bayesian: stats.BayesianResult | None = None
    raw_means: tuple[FloatArray, FloatArray] | None = None
    """CUPED only: the unadjusted per-arm means (Σy / n), reported beside the adjusted ones."""
    covariates: list[tuple[str, ...]] | None = None
    """Regression adjustment only: each metric's covariates, in the regression's order."""
    effect_var: FloatArray | None = None
    """Var(abs effect) behind the CI where it is not ``control_var + treatment_var`` (the
    z-test's unpooled p(1 − p)/n, where the arms' variances are the sample variances)."""


def _pairs(aggregates: Aggregates, columns: Sequence[str]) -> tuple[FloatArray, FloatArray]:
    """Control and treatment arrays of shape (metrics, cells, treatments), from one aggregate
    column per metric."""
    stacked = np.stack([aggregates.column(name) for name in columns])
    control = np.repeat(stacked[:, :, :1], stacked.shape[2] - 1, axis=2)
    return control, stacked[:, :, 1:]


def _arms(
    agg: Aggregates, columns: list[tuple[str, ...]]
) -> tuple[list[FloatArray], list[FloatArray]]:
    """Control and treatment arrays per position of ``columns[k]``, metric k's aggregate
    columns (all metrics list the same kinds of column, in the same order)."""
    by_position = [_pairs(agg, names) for names in zip(*columns, strict=True)]
    return [c for c, _ in by_position], [t for _, t in by_position]


def _test_family(name: str, metrics: list[int], agg: Aggregates, alpha: float) -> FamilyResult:
    names = [metric_columns(i) for i in metrics]
    n_c, n_t = _pairs(agg, [UNITS] * len(metrics))
    reduction = raw_means = effect_var = None
    with np.errstate(divide="ignore", invalid="ignore"):
        if name in ("binary", "mean"):
            (sy_c, syy_c), (sy_t, syy_t) = _arms(agg, [n.sums for n in names])
            c, t = stats.SampleStats(n_c, sy_c, syy_c), stats.SampleStats(n_t, sy_t, syy_t)
            test = (stats.ztest_proportions if name == "binary" else stats.welch_ttest)(
                c, t, alpha=alpha
            )
            var_c, var_t = c.variance / n_c, t.variance / n_t
            if name == "binary":
                p_c, p_t = c.mean, t.mean
                effect_var = p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t
        elif name in ("binary_cuped", "mean_cuped"):
            control, treatment = _arms(agg, [n.covariate_sums for n in names])
            cc, ct = stats.CovariateStats(n_c, *control), stats.CovariateStats(n_t, *treatment)
            cuped = stats.cuped_test(cc, ct, alpha=alpha)
            test, reduction = cuped, cuped.variance_reduction
            raw_means = cc.y.mean, ct.y.mean
            arms = stats.cuped_arms(cc, ct)
            var_c, var_t = arms.control_var, arms.treatment_var
        elif name == "ratio":
            control, treatment = _arms(agg, [n.covariate_sums for n in names])
            rc, rt = stats.RatioStats(n_c, *control), stats.RatioStats(n_t, *treatment)
            test = stats.ratio_test(rc, rt, alpha=alpha)
            var_c, var_t = rc.variance / n_c, rt.variance / n_t
        else:  # quantile
            (n_c, est_c, lo_c, hi_c), (n_t, est_t, lo_t, hi_t) = _arms(
                agg, [n.quantile_bracket for n in names]
            )
            qc = stats.QuantileStats(n_c, est_c, lo_c, hi_c, RANK_ALPHA)
            qt = stats.QuantileStats(n_t, est_t, lo_t, hi_t, RANK_ALPHA)
            test = stats.quantile_test(qc, qt, alpha=alpha)
            var_c, var_t = qc.standard_error**2, qt.standard_error**2
    return FamilyResult(
        metrics,
        test,
        n_c,
        n_t,
        var_c,
        var_t,
        reduction,
        raw_means=raw_means,
        effect_var=effect_var,
    )


def _regression_columns(plan: AnalysisPlan, i: int) -> tuple[list[str], list[list[str]], list[str]]:
    """Aggregate columns of metric ``i``'s covariate vector z (own pre-period first, then the
    named covariates): Σz, Σzzᵀ and Σzy, by name."""
    names = metric_columns(i)
    own = plan.metrics[i].definition.cuped_days > 0
    named = list(plan.adjusted().get(i, ()))
    parts: list[tuple[str, int]] = ([("x", -1)] if own else []) + [("c", j) for j in named]

    def cross(a: tuple[str, int], b: tuple[str, int]) -> str:
        if a[0] == "x" and b[0] == "x":
            return names.sum_x_sq
        if a[0] == "x" or b[0] == "x":
            return pre_period_covariate_cross(i, b[1] if a[0] == "x" else a[1])
        return covariate_cross(a[1], b[1])

    sums = [names.sum_x if kind == "x" else covariate_sum(j) for kind, j in parts]
    matrix = [[cross(a, b) for b in parts] for a in parts]
    with_y = [names.sum_xy if kind == "x" else outcome_covariate_cross(i, j) for kind, j in parts]
    return sums, matrix, with_y


def _regression_family(plan: AnalysisPlan, metrics: list[int], agg: Aggregates) -> FamilyResult:
    """Metrics adjusted by named covariates (and their own pre-period): OLS regression
    adjustment per metric × cell × treatment, one batched solve (``stats.regression_test``)."""
    n_c, n_t = _pairs(agg, [UNITS] * len(metrics))
    (sy_c, syy_c), (sy_t, syy_t) = _arms(agg, [metric_columns(i).sums for i in metrics])
    layouts = [_regression_columns(plan, i) for i in metrics]

    def stacked(pick: Any) -> tuple[FloatArray, FloatArray]:
        data = np.stack([pick(layout) for layout in layouts])  # (M, C, V, …)
        rest = data.shape[3:]
        control = np.broadcast_to(
            data[:, :, :1], (*data.shape[:2], data.shape[2] - 1, *rest)
        ).copy()
        return control, data[:, :, 1:]

    def vector(names: list[str]) -> FloatArray:
        return np.stack([agg.column(name) for name in names], axis=-1)

    z_c, z_t = stacked(lambda layout: vector(layout[0]))
    zz_c, zz_t = stacked(lambda layout: np.stack([vector(row) for row in layout[1]], axis=-2))
    zy_c, zy_t = stacked(lambda layout: vector(layout[2]))
    control = stats.RegressionStats(n_c, sy_c, syy_c, z_c, zz_c, zy_c)
    treatment = stats.RegressionStats(n_t, sy_t, syy_t, z_t, zz_t, zy_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        test = stats.regression_test(control, treatment, alpha=plan.alpha)
        raw_means = sy_c / n_c, sy_t / n_t
    return FamilyResult(
        metrics,
        test,
        n_c,
        n_t,
        test.control_var,
        test.treatment_var,
        test.variance_reduction,
        raw_means=raw_means,
        covariates=[plan.covariate_names(i) for i in metrics],
    )


def linearised(n: FloatArray, mean: FloatArray, var_of_mean: FloatArray) -> stats.SampleStats:
    """SampleStats with mean ``mean`` and Var(mean) = ``var_of_mean``."""
    with np.errstate(invalid="ignore"):
        return stats.SampleStats(n, n * mean, (n - 1) * n * var_of_mean + n * mean * mean)


def _engine_results(result: FamilyResult, plan: AnalysisPlan) -> None:
    if plan.engine is Engine.FREQUENTIST:
        return
    # Means before reason-blanking: recompute from the test (NaN where the test is invalid).
    control = linearised(result.control_n, result.test.control_mean, result.control_var)
    treatment = linearised(result.treatment_n, result.test.treatment_mean, result.treatment_var)
    if plan.engine is Engine.SEQUENTIAL:
        result.sequential = stats.sequential_test(control, treatment, alpha=plan.alpha)
    else:
        result.bayesian = stats.bayesian_test(control, treatment, relative=True, alpha=plan.alpha)


RELATIVE_METHOD: dict[RelativeInterval, RelativeMethod] = {
    RelativeInterval.DELTA: "delta",
    RelativeInterval.FIELLER: "fieller",
    RelativeInterval.LOG: "log",
}


def _relative_interval(result: FamilyResult, plan: AnalysisPlan) -> None:
    """Replace the tests' delta-method relative CIs by the plan's ``relative_ci`` method,
    from the same arm means and variances of those means (and the t degrees of freedom)."""
    if plan.relative_ci is RelativeInterval.DELTA:
        return
    test = result.test
    df = test.df if np.isfinite(test.df).any() else None
    low, high = stats.relative_interval(
        test.control_mean,
        test.treatment_mean,
        result.control_var,
        result.treatment_var,
        method=RELATIVE_METHOD[plan.relative_ci],
        alpha=plan.alpha,
        df=df,
    )
    blank = np.isnan(test.rel_ci_low)  # reason codes already blanked these comparisons
    result.test = replace(
        test, rel_ci_low=np.where(blank, np.nan, low), rel_ci_high=np.where(blank, np.nan, high)
    )


def run_families(plan: AnalysisPlan, aggregates: Aggregates) -> list[FamilyResult]:
    """Group the metrics by test family and run each family once."""
    groups: dict[str, list[int]] = {}
    adjusted = plan.adjusted()
    for i, metric in enumerate(plan.definitions):
        if i in adjusted:
            # one family per size of the covariate vector: one batched solve each
            groups.setdefault(f"regression:{len(plan.covariate_names(i))}", []).append(i)
            continue
        groups.setdefault(family(metric.kind, uses_cuped(metric), plan.binary_test), []).append(i)
    results = []
    for name, metrics in groups.items():
        if name.startswith("regression:"):
            result = _regression_family(plan, metrics, aggregates)
        else:
            result = _test_family(name, metrics, aggregates, plan.alpha)
        _relative_interval(result, plan)
        _engine_results(result, plan)
        results.append(result)
    return results


def _adjust(p_values: FloatArray, correction: Correction) -> FloatArray:
    flat = p_values.ravel()
    adjusted = np.full(flat.shape, np.nan)
    valid = ~np.isnan(flat)
    if correction is Correction.NONE or not valid.any():
        adjusted[valid] = flat[valid]
    elif correction is Correction.HOLM:
        adjusted[valid] = stats.holm(flat[valid])
    else:
        adjusted[valid] = stats.benjamini_hochberg(flat[valid])
    return adjusted.reshape(p_values.shape)


class PowerFields(NamedTuple):
    """An overall result's power against the plan's MDE, MDE now, units needed, days left."""

    power: float | None
    mde: float | None
    n_required: float | None
    days_remaining: int | None


def _power_fields(
    plan: AnalysisPlan, aggregates: Aggregates, result: FamilyResult, m: int, t: int
) -> PowerFields:
    """Achieved power against the plan's MDE, MDE now, units needed and days remaining."""
    metric = plan.definitions[result.metrics[m]]
    n_c = float(result.control_n[m, 0, t])
    n_t = float(result.treatment_n[m, 0, t])
    mean_c = float(result.test.control_mean[m, 0, t])
    if not (n_c >= 2 and n_t >= 2 and math.isfinite(mean_c) and mean_c != 0):
        return PowerFields(None, None, None, None)
    ratio = n_t / n_c
    options: dict[str, Any] = {"alpha": plan.alpha, "ratio": ratio}
    binary = (
        metric.kind is MetricKind.BINARY
        and not uses_cuped(metric)
        and plan.binary_test is BinaryTest.Z
        and result.metrics[m] not in plan.adjusted()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        if binary:
            mde = stats.mde_for_sample_size(
                n_c, baseline=mean_c, relative=True, power=plan.power, **options
            )
        else:
            std = math.sqrt(n_c * float(result.control_var[m, 0, t]))
            mde = stats.mde_for_sample_size(n_c, std=std, power=plan.power, **options) / abs(mean_c)
        power = needed = remaining = None
        if plan.mde is not None:
            if binary:
                power = stats.achieved_power(
                    plan.mde, n_c, baseline=mean_c, relative=True, **options
                )
                needed = stats.sample_size_proportions(
                    mean_c, plan.mde, relative=True, power=plan.power, **options
                ).n_control
            else:
                power = stats.achieved_power(plan.mde * abs(mean_c), n_c, std=std, **options)
                needed = stats.sample_size_means(
                    std, plan.mde * abs(mean_c), power=plan.power, **options
                ).n_control
            days = len(aggregates.indices("day"))
            control_units = float(aggregates.n[0, 0])
            if days and control_units and math.isfinite(float(needed)):
                per_day = control_units / days
                remaining = math.ceil(max(float(needed) - control_units, 0.0) / per_day)
    return PowerFields(
        power=number(power) if power is not None else None,
        mde=number(mde),
        n_required=number(needed) if needed is not None else None,
        days_remaining=remaining,
    )


def _threshold_fields(planned: PlannedMetric) -> dict[str, Any]:
    """An overall row's thresholds, each with its scale (absent when the metric has none)."""
    fields: dict[str, Any] = {}
    if planned.role is MetricRole.GUARDRAIL and planned.margin is not None:
        fields.update(margin=planned.margin, margin_scale=planned.margin_scale)
    if planned.min_lift is not None:
        fields.update(min_lift=planned.min_lift.value, min_lift_scale=planned.min_lift.scale)
    return fields


def _comparison(plan: AnalysisPlan, result: FamilyResult, m: int, c: int, t: int) -> dict[str, Any]:
    """The fields of :class:`~splitlab.analysis.snapshot.Comparison` for one metric, cell and
    treatment (the optional ones only where they apply)."""
    metric = plan.definitions[result.metrics[m]]
    source = result.sequential if result.sequential is not None else result.test
    fields: dict[str, Any] = {
        "metric": metric.key,
        "variant": plan.treatments[t],
        "engine": plan.engine,
        "control_n": number(result.control_n[m, c, t]),
        "treatment_n": number(result.treatment_n[m, c, t]),
    }
    for name in TEST_FIELDS:
        fields[name] = number(getattr(source, name)[m, c, t])
    fields["reason"] = str(source.reason[m, c, t])
    if result.raw_means is not None:
        # CUPED: effects and CIs compare the adjusted means; the means under the usual keys
        # are the raw ones, so they reconcile with a plain per-arm average of the metric.
        fields["control_mean_adjusted"] = fields["control_mean"]
        fields["treatment_mean_adjusted"] = fields["treatment_mean"]
        fields["control_mean"] = number(result.raw_means[0][m, c, t])
        fields["treatment_mean"] = number(result.raw_means[1][m, c, t])
    if result.variance_reduction is not None:
        fields["variance_reduction"] = number(result.variance_reduction[m, c, t])
    if result.covariates is not None:
        fields["covariates"] = result.covariates[m]
    if result.bayesian is not None:
        bayes = result.bayesian
        win = float(bayes.chance_to_win[m, c, t])
        risk_c, risk_t = float(bayes.risk_control[m, c, t]), float(bayes.risk_treatment[m, c, t])
        if not plan.metrics[result.metrics[m]].higher_is_better:
            win, risk_c, risk_t = 1.0 - win, risk_t, risk_c
        fields.update(
            chance_to_win=number(win),
            risk_control=number(risk_c),
            risk_treatment=number(risk_t),
            credible_low=number(bayes.ci_low[m, c, t]),
            credible_high=number(bayes.ci_high[m, c, t]),
        )
    return fields


def _segment(aggregates: Aggregates, c: int) -> Segment | None:
    cell = aggregates.cells[c]
    if cell.kind != "segment":
        return None
    return Segment(name=cell.segment or "", value=cell.value or "")


def _segments(aggregates: Aggregates) -> dict[str, list[int]]:
    """Segment name → its cells (single attributes and crossed pairs alike)."""
    out: dict[str, list[int]] = {}
    for c, cell in enumerate(aggregates.cells):
        if cell.kind == "segment":
            out.setdefault(cell.segment or "", []).append(c)
    return out


def _cell_adjusted(
    plan: AnalysisPlan, aggregates: Aggregates, families: list[FamilyResult]
) -> dict[int, list[FloatArray]]:
    """Segment cell → per family an array (metrics, treatments) of p-values corrected across
    the cells of that segment (per metric × treatment, by ``plan.correction``)."""
    out: dict[int, list[FloatArray]] = {}
    for cells in _segments(aggregates).values():
        adjusted = []
        for fam in families:
            source = fam.sequential if fam.sequential is not None else fam.test
            p = np.moveaxis(source.p_value[:, cells, :], 1, -1)  # (metrics, treatments, cells)
            flat = p.reshape(-1, len(cells))
            adjusted.append(
                np.stack([_adjust(row, plan.correction) for row in flat]).reshape(p.shape)
            )
        for k, c in enumerate(cells):
            out[c] = [a[..., k] for a in adjusted]
    return out


def heterogeneity(
    plan: AnalysisPlan, aggregates: Aggregates, families: list[FamilyResult]
) -> list[HeterogeneityTest]:
    """Per segment × metric × treatment: Cochran's Q (interaction z for two cells) on the
    cells' fixed-horizon absolute effects and their variances, in metric order."""
    order = {key: k for k, key in enumerate(m.key for m in plan.metrics)}
    found: list[tuple[tuple[int, int, int], HeterogeneityTest]] = []
    for rank, (name, cells) in enumerate(_segments(aggregates).items()):
        crossed = aggregates.cells[cells[0]].crossed
        for fam in families:
            if crossed and plan.definitions[fam.metrics[0]].kind is MetricKind.QUANTILE:
                continue  # no quantiles for crossed cells
            effects = fam.test.abs_effect[:, cells, :]
            var = (
                fam.effect_var
                if fam.effect_var is not None
                else fam.control_var + fam.treatment_var
            )
            variances = var[:, cells, :]
            result = stats.heterogeneity(effects, variances, axis=1)  # (metrics, treatments)
            for m, metric in enumerate(fam.metrics):
                key = plan.definitions[metric].key
                for t, variant in enumerate(plan.treatments):
                    two = result.cells[m, t] == 2
                    test = HeterogeneityTest(
                        metric=key,
                        variant=variant,
                        segment=name,
                        test="interaction_z" if two else "cochran_q",
                        cells=int(result.cells[m, t]),
                        statistic=number((result.z if two else result.q)[m, t]),
                        df=number(result.df[m, t]),
                        p_value=number(result.p_value[m, t]),
                        i_squared=number(result.i_squared[m, t]),
                        reason=str(result.reason[m, t]),
                    )
                    found.append(((order[key], t, rank), test))
    found.sort(key=lambda item: item[0])
    return [test for _, test in found]


def compute_results(
    plan: AnalysisPlan, aggregates: Aggregates
) -> tuple[list[ResultRow], list[DailyPoint], list[FamilyResult]]:
    """Result rows (overall, then segments) and daily points, in metric order."""
    families = run_families(plan, aggregates)
    order = {key: k for k, key in enumerate(m.key for m in plan.metrics)}
    results: list[tuple[tuple[int, int, int], ResultRow]] = []
    daily: list[tuple[tuple[int, int, int], DailyPoint]] = []
    top_cells = [c for c, cell in enumerate(aggregates.cells) if cell.kind != "day"]
    day_cells = aggregates.indices("day")
    bayesian = plan.engine is Engine.BAYESIAN
    adjusted: dict[tuple[int, int, int], float | None] = {}
    if not bayesian:
        for c in top_cells:
            keys, values = [], []
            for fam in families:
                source = fam.sequential if fam.sequential is not None else fam.test
                for m in range(len(fam.metrics)):
                    for t in range(len(plan.treatments)):
                        keys.append((fam.metrics[m], c, t))
                        values.append(float(source.p_value[m, c, t]))
            for key, value in zip(keys, _adjust(np.array(values), plan.correction), strict=True):
                adjusted[key] = number(value)
    by_cells = {} if bayesian else _cell_adjusted(plan, aggregates, families)
    segment_rank = {c: k for k, c in enumerate(top_cells)}
    for f, fam in enumerate(families):
        quantile = plan.definitions[fam.metrics[0]].kind is MetricKind.QUANTILE
        for m in range(len(fam.metrics)):
            metric_rank = order[plan.definitions[fam.metrics[m]].key]
            for t in range(len(plan.treatments)):
                for c in top_cells:
                    if quantile and aggregates.cells[c].crossed:
                        continue  # no quantiles for crossed cells
                    fields = _comparison(plan, fam, m, c, t)
                    if not bayesian:
                        fields["p_value_adjusted"] = adjusted.get((fam.metrics[m], c, t))
                        if c in by_cells:
                            fields["p_value_adjusted_cells"] = number(by_cells[c][f][m, t])
                    if c == 0:
                        fields.update(_power_fields(plan, aggregates, fam, m, t)._asdict())
                        fields.update(_threshold_fields(plan.metrics[fam.metrics[m]]))
                    row = ResultRow(segment=_segment(aggregates, c), **fields)
                    results.append(((metric_rank, segment_rank[c], t), row))
                if not quantile:
                    for rank, c in enumerate(day_cells):
                        day = aggregates.cells[c].day
                        assert day is not None
                        point = DailyPoint(day=day, **_comparison(plan, fam, m, c, t))
                        daily.append(((metric_rank, t, rank), point))
    results.sort(key=lambda item: item[0])
    daily.sort(key=lambda item: item[0])
    return [row for _, row in results], [point for _, point in daily], families


def omnibus(plan: AnalysisPlan, aggregates: Aggregates) -> list[OmnibusTest]:
    """A/B/n: χ² (binary) or one-way ANOVA (count, sum) across all variants, overall."""
    if len(plan.variants) < 3:
        return []
    out = []
    n = aggregates.n[0]
    for i, metric in enumerate(plan.definitions):
        names = metric_columns(i)
        sums = aggregates.columns.get(names.sum)
        if sums is None or metric.kind not in (MetricKind.BINARY, MetricKind.COUNT, MetricKind.SUM):
            continue
        if metric.kind is MetricKind.BINARY:
            result = stats.chi2_omnibus(sums[0], n)
            test: Literal["chi2", "anova"] = "chi2"
        else:
            squares = aggregates.column(names.sum_sq)[0]
            arms = [stats.SampleStats(n[v], sums[0, v], squares[v]) for v in range(n.size)]
            result = stats.anova_oneway(arms)
            test = "anova"
        out.append(
            OmnibusTest(
                metric=metric.key,
                test=test,
                statistic=number(result.statistic),
                p_value=number(result.p_value),
                df=number(result.df),
                df_denominator=number(result.df_denominator),
                reason=str(result.reason),
            )
        )
    return out

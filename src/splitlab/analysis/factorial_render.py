"""Plain-text tables of a factorial analysis and of an interaction analysis (the CLI's
``splitlab factorial`` and ``splitlab interactions``)."""

from __future__ import annotations

from splitlab.analysis.factorial import FactorialResult
from splitlab.analysis.interactions import InteractionsResult
from splitlab.analysis.render import markdown_table


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _ci(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{low:.4g}, {high:.4g}]"


def render_factorial(result: FactorialResult) -> str:
    """The design, then per metric its cell means and ANOVA table (effect = high − low)."""
    level = round((1 - result.alpha) * 100)
    lines = [f"Factorial analysis of {result.experiment} ({result.anova})", ""]
    lines += markdown_table(
        ["factor", "low (control)", "high"], [[f.name, f.low, f.high] for f in result.factors]
    )
    lines.append("")
    for metric in result.metrics:
        lines.append(f"## {metric.metric} ({metric.kind})")
        if metric.reason:
            lines += [f"not decomposed: {metric.reason}", ""]
            continue
        lines += markdown_table(
            ["variant", *[f.name for f in result.factors], "n", "mean"],
            [
                [c.variant, *c.levels.values(), str(c.n), _num(metric.cell_means.get(c.variant))]
                for c in result.cells
            ],
        )
        lines.append("")
        header = ["term", "effect", f"{level}% CI", "t", "p", "sum sq", "F"]
        rows = [
            [
                e.term,
                _num(e.effect),
                _ci(e.ci_low, e.ci_high),
                _num(e.t, 3),
                _p(e.p_value),
                _num(e.sum_sq),
                _num(e.f, 4),
            ]
            for e in metric.effects
        ]
        rows.append(
            ["residual", "", "", "", "", _num(metric.residual_sum_sq), f"df {metric.residual_df:g}"]
            if metric.residual_df is not None
            else ["residual", "", "", "", "", "—", ""]
        )
        lines += markdown_table(header, rows)
        lines.append("")
    return "\n".join(lines)


def render_interactions(result: InteractionsResult) -> str:
    """Shared units, then per metric A's effect within each arm of B and the interactions."""
    level = round((1 - result.alpha) * 100)
    lines = [
        f"Interaction of {result.experiment} with {result.other}: "
        f"{result.shared} of {result.units} units are in both",
        "",
    ]
    for metric in result.metrics:
        lines.append(f"## {metric.metric} ({metric.kind})")
        if metric.reason:
            lines += [f"not tested: {metric.reason}", ""]
            continue
        rows = [
            [
                w.variant,
                f"{result.other}={w.other_variant}",
                _num(w.estimate),
                _ci(w.ci_low, w.ci_high),
                _p(w.p_value),
            ]
            for w in metric.within
        ]
        rows += [
            [
                i.variant,
                f"interaction ({i.other_variant} − control)",
                _num(i.estimate),
                _ci(i.ci_low, i.ci_high),
                _p(i.p_value),
            ]
            for i in metric.interactions
        ]
        lines += markdown_table(["variant", "among", "effect", f"{level}% CI", "p"], rows)
        if metric.f is not None and metric.f_df is not None:
            df2 = "—" if metric.f_df[1] is None else f"{metric.f_df[1]:g}"
            lines.append(
                f"no-interaction F({metric.f_df[0]}, {df2}) = {metric.f:.4g}, "
                f"p = {_p(metric.f_p_value)}"
            )
        lines.append("")
    return "\n".join(lines)

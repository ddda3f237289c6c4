"""The experiment page's two-dimensional segment views: crossed segments (``plan.crossed``,
named ``a × b``) as grids — rows the values of ``a``, columns the values of ``b`` — and ad-hoc
breakdowns (``?breakdown=a,b``, ``analysis.breakdown``), labelled exploratory.

No statistics here: each cell shows the snapshot's effect ÷ SE (its test statistic), is
marked significant by the snapshot's p-value corrected across the segment's cells
(``p_value_adjusted_cells``; the chance to win for the Bayesian engine), and the
heterogeneity test (Cochran's Q, or the interaction z for two cells) is the snapshot's own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from splitlab.analysis.aggregates import CROSS
from splitlab.analysis.breakdown import breakdown, parse_dimensions
from splitlab.analysis.snapshot import HeterogeneityTest, ResultRow, Snapshot
from splitlab.domain import Engine
from splitlab.errors import NotFoundError
from splitlab.web import experiment_view as ev

if TYPE_CHECKING:
    from splitlab.services import Services


def crossed_names(snapshot: Snapshot) -> list[str]:
    """The snapshot's crossed segments' names (``a × b``), in the plan's order."""
    pairs = snapshot.settings.get("crossed") or []
    return [CROSS.join(str(name) for name in pair) for pair in pairs if len(pair) == 2]


def _significant(row: ResultRow, *, engine: Engine, alpha: float) -> bool:
    """Significant after the correction across the segment's cells."""
    if engine is Engine.BAYESIAN:
        return bool(ev.significant(row, engine=engine, alpha=alpha))
    p = row.p_value_adjusted_cells
    return p is not None and p < alpha


def _heterogeneity(test: HeterogeneityTest | None) -> dict[str, Any] | None:
    """The snapshot's heterogeneity test, with the sentence the page states."""
    if test is None:
        return None
    data = test.to_json()
    if test.p_value is None or test.statistic is None:
        data["text"] = f"Heterogeneity test: no result ({test.reason or 'not computed'})."
        return data
    if test.test == "interaction_z":
        what = f"interaction z = {test.statistic:.2f}"
    else:
        df = f"{test.df:g}" if test.df is not None else "—"
        what = f"Cochran's Q = {test.statistic:.2f}, df = {df}"
    i2 = f", I² = {test.i_squared * 100:.0f}%" if test.i_squared is not None else ""
    data["text"] = (
        f"Heterogeneity across the {test.cells} cells: {what}, p = {ev.pvalue(test.p_value)}{i2}"
    )
    return data


def _cell(
    row: ResultRow, *, engine: Engine, alpha: float, higher_is_better: bool
) -> dict[str, Any]:
    z = row.statistic
    finite = z is not None and math.isfinite(z)
    tone = "none"
    if finite and z != 0:
        tone = "good" if (z > 0) == higher_is_better else "bad"  # type: ignore[operator]
    strength = min(abs(z) / 4.0, 1.0) if finite else 0.0  # type: ignore[arg-type]
    return {
        "z": round(z, 2) if finite else None,  # type: ignore[arg-type]
        "z_text": ev.signed(z),
        "tone": tone,
        "strength": round(0.12 + 0.88 * strength, 3),
        "significant": _significant(row, engine=engine, alpha=alpha),
        "p_cells": row.p_value_adjusted_cells,
        "p_cells_text": ev.pvalue(row.p_value_adjusted_cells),
        "rel": ev.pct(row.rel_effect),
        "rel_ci": f"[{ev.pct(row.rel_ci_low)}, {ev.pct(row.rel_ci_high)}]",
        "n": ev.count((row.control_n or 0) + (row.treatment_n or 0)),
        "reason": row.reason,
    }


def crossed_grids(
    snapshot: Snapshot, *, alpha: float, metric: str | None = None, variant: str | None = None
) -> dict[str, Any]:
    """Every crossed segment as a grid for one metric × treatment (``metric``/``variant``;
    by default the first with crossed cells — the primary metric, first treatment)."""
    names = crossed_names(snapshot)
    rows = [r for r in snapshot.results if r.segment is not None and r.segment.name in names]
    choices: list[tuple[str, str]] = list(dict.fromkeys((r.metric, r.variant) for r in rows))
    if not choices:
        return {"choices": [], "grids": [], "metric": None, "variant": None}
    chosen = (metric or choices[0][0], variant or choices[0][1])
    if chosen not in choices:
        raise NotFoundError(
            f"no crossed segment cells for metric {chosen[0]!r} and variant {chosen[1]!r}",
            details={"metric": chosen[0], "variant": chosen[1]},
        )
    infos = ev.metric_info(snapshot)
    info = infos.get(chosen[0])
    higher = info.higher_is_better if info is not None else True
    grids = []
    for name in names:
        a, b = name.split(CROSS, 1)
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        values_a: list[str] = []
        values_b: list[str] = []
        for r in rows:
            if r.segment is None or r.segment.name != name or (r.metric, r.variant) != chosen:
                continue
            va, _, vb = r.segment.value.partition(CROSS)
            values_a += [va] if va not in values_a else []
            values_b += [vb] if vb not in values_b else []
            cells[(va, vb)] = _cell(r, engine=snapshot.engine, alpha=alpha, higher_is_better=higher)
            cells[(va, vb)]["value"] = r.segment.value
        if not cells:
            continue
        test = next(
            (
                h
                for h in snapshot.heterogeneity
                if h.segment == name and h.metric == chosen[0] and h.variant == chosen[1]
            ),
            None,
        )
        grids.append(
            {
                "segment": name,
                "a": a,
                "b": b,
                "columns": values_b,
                "rows": [
                    {"value": va, "cells": [cells.get((va, vb)) for vb in values_b]}
                    for va in values_a
                ],
                "heterogeneity": _heterogeneity(test),
            }
        )
    return {
        "choices": [
            {
                "metric": m,
                "variant": v,
                "label": (infos[m].name if m in infos else m) + f" · {v}",
                "selected": (m, v) == chosen,
            }
            for m, v in choices
        ],
        "grids": grids,
        "metric": chosen[0],
        "variant": chosen[1],
    }


def adhoc_breakdown(
    *,
    services: Services,
    key: str,
    text: str,
    alpha: float,
    metric: str | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """An ad-hoc breakdown by one or two exposure attributes (``a,b``; 422 otherwise),
    computed by ``analysis.breakdown`` and laid out like the pre-registered views: a grid for
    two attributes, the segment heatmap for one. Exploratory, and said so."""
    dimensions = parse_dimensions(text)
    snapshot = breakdown(services=services, key=key, dimensions=dimensions)
    label = snapshot.breakdown
    grids = crossed_grids(snapshot, alpha=alpha, metric=metric, variant=variant)
    return {
        "dimensions": list(dimensions),
        "query": ",".join(dimensions),
        "exploratory": True,
        "note": label.note if label is not None else "",
        "cached": snapshot.cached,
        "heatmap": ev.heatmap(snapshot, alpha=alpha),
        **grids,
    }

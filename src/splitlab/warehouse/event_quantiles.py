"""Event-level quantile aggregates (``plan.event_quantiles``) per variant and segment value.

They read the stored table of :func:`~splitlab.warehouse.queries.event_values` (``uid,
variant, v, seg0 … segK``: one row per matching event) and return, like
:func:`~splitlab.warehouse.queries.quantile_aggregates`, one block of rows per population:
``segment`` -1 with ``value`` 0 is the whole variant (block 0), ``segment`` k with ``value``
the code of segment k is that segment's cells (block k + 1).  A unit is in one cell of each
segment, so each block covers every unit once and one scan serves every block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ibis
import ibis.expr.types as ir

from splitlab.warehouse.columns import segment_column

Thresholds = Mapping[tuple[int, int], float]
"""A block's q̂ per ``(variant, value)``: the estimate each unit's events are compared with."""


def _keys(table: ir.Table, block: int) -> dict[str, Any]:
    if block == 0:
        return {
            "segment": ibis.literal(-1, type="int64"),
            "value": ibis.literal(0, type="int16"),
        }
    return {
        "segment": ibis.literal(block - 1, type="int64"),
        "value": table[segment_column(block - 1)].cast("int16"),
    }


def event_quantiles(table: ir.Table, *, probabilities: Sequence[Sequence[float]]) -> ir.Table:
    """``quantile_cont`` of the events' ``v`` at ``probabilities[block]`` per variant and cell
    of each block (blocks without probabilities are left out): rows ``variant, segment,
    value, quantiles`` (each probability evaluated on its own, as in ``quantile_aggregates``)."""
    blocks = [
        table.group_by(variant=table.variant, **_keys(table, block)).agg(
            quantiles=table.v.quantile(sorted(set(wanted)))
        )
        for block, wanted in enumerate(probabilities)
        if wanted
    ]
    if not blocks:
        raise ValueError("no block asks for a quantile")
    return ibis.union(*blocks) if len(blocks) > 1 else blocks[0]


def _threshold(table: ir.Table, block: int, thresholds: Thresholds) -> ir.FloatingValue:
    """The q̂ of each event's cell in ``block`` (NULL where the cell has none)."""
    cases = []
    for (variant, value), estimate in sorted(thresholds.items()):
        condition = table.variant == variant
        if block:
            condition = condition & (table[segment_column(block - 1)] == value)
        cases.append((condition, ibis.literal(estimate, type="float64")))
    if not cases:
        return ibis.null("float64")
    return ibis.cases(*cases, else_=ibis.null("float64"))


def clustered_sums(table: ir.Table, *, thresholds: Sequence[Thresholds]) -> ir.Table:
    """The unit-level sums of the clustered delta method per variant and cell of each block
    (``thresholds[block]``: the cells' q̂): with Iᵢ unit i's events at or below its cell's q̂
    and Nᵢ its events, rows ``variant, segment, value, units, si, sii, sn, snn, sin`` = n, ΣI,
    ΣI², ΣN, ΣN², ΣIN (see ``stats.clustered_quantile_ranks``).  Each unit's Iᵢ for every
    block comes from one grouping of the events by unit."""
    n_blocks = len(thresholds)
    segments = [segment_column(k) for k in range(n_blocks - 1)]
    counts = {
        f"i{block}": ibis.ifelse(
            (table.v <= _threshold(table, block, chosen)).fill_null(False), 1, 0
        )
        .cast("int64")
        .sum()
        for block, chosen in enumerate(thresholds)
    }
    units = table.group_by(["uid", "variant", *segments]).agg(n=table.count(), **counts)
    blocks = []
    for block in range(n_blocks):
        i = units[f"i{block}"].cast("float64")
        n = units.n.cast("float64")
        blocks.append(
            units.group_by(variant=units.variant, **_keys(units, block)).agg(
                units=units.count(),
                si=i.sum(),
                sii=(i * i).sum(),
                sn=n.sum(),
                snn=(n * n).sum(),
                sin=(i * n).sum(),
            )
        )
    return ibis.union(*blocks) if len(blocks) > 1 else blocks[0]

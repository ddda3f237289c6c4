"""Hand-built snapshots for the decision engine's tests: a few metrics and comparisons with
exactly the numbers a test needs (the engine reads snapshots, never raw rows)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from splitlab.analysis.snapshot import (
    CheckName,
    DataWatermark,
    HealthCheck,
    ResultRow,
    Segment,
    Severity,
    Snapshot,
    VariantUnits,
)
from splitlab.domain import Engine

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def metric(
    key: str, role: str = "primary", *, direction: str = "increase", margin: float | None = None
) -> dict[str, Any]:
    """One entry of ``settings["metrics"]``."""
    return {
        "role": role,
        "margin": margin,
        "definition": {"key": key, "name": key, "kind": "binary", "direction": direction},
    }


def row(
    metric_key: str,
    variant: str = "treatment",
    *,
    rel: float,
    ci: tuple[float, float],
    p: float,
    p_adjusted: float | None = None,
    control_mean: float = 0.10,
    n: float = 10_000,
    segment: tuple[str, str] | None = None,
    n_required: float | None = None,
    days_remaining: int | None = None,
    engine: Engine = Engine.FREQUENTIST,
    **extra: Any,
) -> ResultRow:
    """A comparison with relative effect ``rel`` (CI ``ci``) on a control mean; the absolute
    effect and CI follow from them (z interval: ``df`` null)."""
    fields: dict[str, Any] = {
        "metric": metric_key,
        "variant": variant,
        "engine": engine,
        "control_n": n,
        "treatment_n": n,
        "control_mean": control_mean,
        "treatment_mean": control_mean * (1 + rel),
        "abs_effect": control_mean * rel,
        "abs_ci_low": control_mean * ci[0],
        "abs_ci_high": control_mean * ci[1],
        "rel_effect": rel,
        "rel_ci_low": ci[0],
        "rel_ci_high": ci[1],
        "statistic": None,
        "p_value": p,
        "df": None,
        "reason": "",
        "segment": Segment(name=segment[0], value=segment[1]) if segment else None,
    }
    if engine is not Engine.BAYESIAN:
        fields["p_value_adjusted"] = p if p_adjusted is None else p_adjusted
    if segment is None and n_required is not None:
        fields["n_required"] = n_required
        fields["days_remaining"] = days_remaining
    return ResultRow(**(fields | extra))


def check(
    name: CheckName, severity: Severity, value: float | None = None, **about: str
) -> HealthCheck:
    return HealthCheck(
        check=name, severity=severity, value=value, message=f"{name} {severity}", **about
    )


def snapshot(
    *,
    metrics: list[dict[str, Any]],
    rows: list[ResultRow],
    health: list[HealthCheck] | None = None,
    variants: tuple[str, ...] = ("control", "treatment"),
    units: int = 10_000,
    days: int = 14,
    engine: Engine = Engine.FREQUENTIST,
    alpha: float = 0.05,
    key: str = "exp",
    snapshot_id: int | None = 1,
) -> Snapshot:
    """A snapshot of ``rows`` with ``units`` per variant over ``days`` days."""
    first = date(2024, 5, 1)
    made = Snapshot(
        experiment=key,
        engine=engine,
        settings_hash="h",
        settings={"alpha": alpha, "metrics": metrics, "engine": engine.value},
        watermark=DataWatermark(
            key="w", exposures=units, events=units, conflicts=0, last_ingested_at=NOW
        ),
        as_of=NOW,
        created_at=NOW,
        duration_ms=1.0,
        timings_ms={},
        units=tuple(
            VariantUnits(variant=v, weight=1 / len(variants), n=units, excluded=0) for v in variants
        ),
        days=tuple(first + timedelta(days=d) for d in range(days)),
        results=tuple(rows),
        omnibus=(),
        health=tuple(health or ()),
    )
    return made.served(snapshot_id=snapshot_id, cached=True) if snapshot_id else made

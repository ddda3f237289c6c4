"""Hand-built per-unit data: written to the warehouse, and kept in Python for the expected
numbers (computed directly with numpy + splitlab.stats on per-unit values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splitlab.config import Settings
from splitlab.domain import ExperimentSpec, MetricDefinition
from splitlab.warehouse import Warehouse

START = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass
class Unit:
    unit_id: str
    variant: str
    exposed_at: datetime
    attributes: dict[str, Any]
    excluded: bool = False


@dataclass
class Event:
    unit_id: str
    name: str
    value: float | None
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    units: list[Unit]
    events: list[Event]

    def write(self, warehouse: Warehouse, key: str) -> None:
        warehouse.record_exposures(
            [
                {
                    "experiment_key": key,
                    "variant_key": u.variant,
                    "unit_id": u.unit_id,
                    "exposed_at": u.exposed_at,
                    "attributes": u.attributes,
                }
                for u in self.units
            ]
        )
        second = [u for u in self.units if u.excluded]
        if second:  # a second exposure in another variant makes the unit a conflict
            warehouse.record_exposures(
                [
                    {
                        "experiment_key": key,
                        "variant_key": "zzz-other",
                        "unit_id": u.unit_id,
                        "exposed_at": u.exposed_at + timedelta(minutes=5),
                    }
                    for u in second
                ]
            )
        warehouse.write_events(
            [
                {
                    "unit_id": e.unit_id,
                    "event_name": e.name,
                    "value": e.value,
                    "occurred_at": e.occurred_at,
                    "properties": e.properties,
                    "event_id": f"ev{i}",
                }
                for i, e in enumerate(self.events)
            ]
        )

    def included(self) -> list[Unit]:
        return [u for u in self.units if not u.excluded]


def generate(
    seed: int = 1,
    *,
    n_units: int = 600,
    variants: tuple[str, ...] = ("control", "b"),
    weights: tuple[float, ...] | None = None,
    lift: float = 0.0,
    days: int = 6,
    excluded_share: float = 0.02,
    countries: tuple[str, ...] = ("de", "fr", "us", "uk", "jp"),
) -> Dataset:
    """Units over ``days`` days with purchases (value, plan property), sessions, latencies,
    events before exposure (CUPED) and after the 7-day window, and a few conflicts."""
    rng = np.random.default_rng(seed)
    probabilities = np.array(weights or [1 / len(variants)] * len(variants))
    units: list[Unit] = []
    events: list[Event] = []
    for i in range(n_units):
        v = int(rng.choice(len(variants), p=probabilities))
        exposed = START + timedelta(seconds=int(rng.integers(0, days * 86400)))
        country = countries[min(int(rng.geometric(0.35)) - 1, len(countries) - 1)]
        attributes: dict[str, Any] = {"country": country}
        if rng.random() < 0.1:
            attributes = {}
        unit = Unit(f"u{i}", variants[v], exposed, attributes, rng.random() < excluded_share)
        units.append(unit)
        base = rng.gamma(2.0, 1.0)
        effect = 1.0 + lift * v
        for _ in range(int(rng.poisson(base * effect))):
            at = exposed + timedelta(hours=float(rng.uniform(-0.5, 9 * 24)))
            plan = "pro" if rng.random() < 0.4 else "free"
            events.append(
                Event(
                    unit.unit_id,
                    "purchase",
                    float(np.round(rng.gamma(2, 10), 2)),
                    at,
                    {"plan": plan},
                )
            )
        for _ in range(int(rng.poisson(base))):  # pre-period behaviour, correlated with base
            at = exposed - timedelta(hours=float(rng.uniform(0.1, 13 * 24)))
            events.append(Event(unit.unit_id, "purchase", float(np.round(rng.gamma(2, 10), 2)), at))
        for _ in range(int(rng.poisson(3))):
            at = exposed + timedelta(hours=float(rng.uniform(0, 10 * 24)))
            events.append(Event(unit.unit_id, "session", None, at))
        if rng.random() < 0.8:
            for _ in range(int(rng.integers(1, 4))):
                at = exposed + timedelta(hours=float(rng.uniform(0, 48)))
                latency = float(np.round(rng.lognormal(5 + 0.05 * v * lift, 0.4), 3))
                value = None if rng.random() < 0.02 else latency
                events.append(Event(unit.unit_id, "page_load", value, at, {"ms": latency}))
    return Dataset(units, events)


METRICS = [
    MetricDefinition(key="converted", kind="binary", event="purchase", window_hours=7 * 24),
    MetricDefinition(
        key="orders", kind="count", event="purchase", capping={"type": "absolute", "value": 6}
    ),
    MetricDefinition(
        key="revenue",
        kind="sum",
        event="purchase",
        window_hours=7 * 24,
        cuped_days=7,
        capping={"type": "percentile", "value": 0.95},
    ),
    MetricDefinition(
        key="pro_revenue_per_session",
        kind="ratio",
        event="purchase",
        filter={"plan": "pro"},
        denominator_event="session",
        window_start_hours=1,
        window_hours=5 * 24,
    ),
    MetricDefinition(
        key="latency_p90",
        kind="quantile",
        event="page_load",
        value_field="ms",
        quantile=0.9,
        direction="decrease",
    ),
]


def spec(
    key: str = "checkout",
    *,
    variants: tuple[str, ...] = ("control", "b"),
    engine: str = "frequentist",
    segments: list[str] | None = None,
    guardrails: list[dict[str, Any]] | None = None,
    **plan: Any,
) -> ExperimentSpec:
    weight = 1 / len(variants)
    return ExperimentSpec.model_validate(
        {
            "key": key,
            "variants": [
                {"key": v, "weight": weight, "is_control": i == 0} for i, v in enumerate(variants)
            ],
            "metrics": {
                "primary": "converted",
                "secondary": ["orders", "revenue", "pro_revenue_per_session"],
                "guardrails": guardrails if guardrails is not None else [{"key": "latency_p90"}],
            },
            "plan": {"engine": engine, "segments": segments or [], **plan},
            "start_at": START.isoformat(),
        }
    )


# ------------------------------------------------------------------ expected per-unit values


def _in_window(unit: Unit, event: Event, metric: MetricDefinition) -> bool:
    start = unit.exposed_at + timedelta(hours=metric.window_start_hours)
    if event.occurred_at < start:
        return False
    if metric.window_hours is None:
        return True
    return event.occurred_at < start + timedelta(hours=metric.window_hours)


def _pre(unit: Unit, event: Event, metric: MetricDefinition) -> bool:
    begin = unit.exposed_at - timedelta(days=metric.cuped_days)
    return begin <= event.occurred_at < unit.exposed_at


def _matches(event: Event, metric: MetricDefinition) -> bool:
    return event.name == metric.event and all(
        event.properties.get(k) == v for k, v in metric.filter.items()
    )


def _value(event: Event, metric: MetricDefinition) -> float | None:
    if metric.value_field:
        raw = event.properties.get(metric.value_field)
        return float(raw) if isinstance(raw, int | float) else None
    return event.value


def per_unit(
    dataset: Dataset, metric: MetricDefinition
) -> dict[str, tuple[float | None, float | None]]:
    """unit_id → (y, x): x is the CUPED covariate or ratio denominator; capping applied."""
    by_unit: dict[str, list[Event]] = {}
    for event in dataset.events:
        by_unit.setdefault(event.unit_id, []).append(event)
    out: dict[str, tuple[float | None, float | None]] = {}
    for unit in dataset.included():
        mine = by_unit.get(unit.unit_id, [])
        hits = [e for e in mine if _matches(e, metric) and _in_window(unit, e, metric)]
        pre = [e for e in mine if _matches(e, metric) and _pre(unit, e, metric)]
        values = [v for v in (_value(e, metric) for e in hits) if v is not None]
        pre_values = [v for v in (_value(e, metric) for e in pre) if v is not None]
        x: float | None = None
        if metric.kind == "binary":
            y: float | None = float(bool(hits))
            x = float(bool(pre))
        elif metric.kind == "count":
            y, x = float(len(hits)), float(len(pre))
        elif metric.kind == "sum":
            y, x = float(sum(values)), float(sum(pre_values))
        elif metric.kind == "ratio":
            y = float(sum(values))
            x = float(
                sum(
                    1
                    for e in mine
                    if e.name == metric.denominator_event and _in_window(unit, e, metric)
                )
            )
        else:
            y = float(np.mean(values)) if values else None
        out[unit.unit_id] = (y, x)
    capping = metric.capping
    if capping is not None and metric.kind not in ("binary", "quantile"):
        ys = np.array([y for y, _ in out.values()], dtype=float)
        cap = capping.value if capping.type == "absolute" else float(np.quantile(ys, capping.value))
        cap_x = metric.cuped_days > 0
        out = {
            k: (
                min(y, cap) if y is not None else None,
                min(x, cap) if x is not None and cap_x else x,
            )
            for k, (y, x) in out.items()
        }
    return out


def same_numbers(fresh: Any, stored: Any) -> bool:
    """Equal, floats to 1e-12 relative: DuckDB's parallel sums may add in another order, so
    the last bits of a float can differ between runs of the same analysis (seen in CI)."""
    if isinstance(fresh, dict) and isinstance(stored, dict):
        return fresh.keys() == stored.keys() and all(
            same_numbers(fresh[k], stored[k]) for k in fresh
        )
    if isinstance(fresh, list) and isinstance(stored, list):
        return len(fresh) == len(stored) and all(map(same_numbers, fresh, stored))
    if (
        isinstance(fresh, float)
        and isinstance(stored, float | int)
        and not isinstance(stored, bool)
    ):
        return fresh == pytest.approx(stored, rel=1e-12, abs=1e-15, nan_ok=True)
    return bool(fresh == stored)


def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose warehouse follows the app store's backend: SQLite + DuckDB for the
    ``duckdb`` param, PostgreSQL (a fresh schema) for ``postgres``; auth on, no refresh
    throttle."""
    common: dict[str, Any] = {
        "home": tmp_path / "home",
        "secret_key": "test-secret",
        "auth": "on",
        "analysis_refresh_seconds": 0,
    }
    if request.param == "duckdb":
        return Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}", **common)
    url = request.getfixturevalue("pg_schema_url")
    return Settings(database_url=url, warehouse_url=url, **common)

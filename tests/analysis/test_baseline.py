"""A metric's recent baseline from the warehouse (``analysis.baseline``), checked against the
same definition computed independently in Python from the simulated rows, on both backends."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from splitlab.analysis.baseline import metric_baseline
from splitlab.domain import LOCAL_ADMIN, MetricDefinition
from splitlab.errors import NotFoundError, ValidationError
from splitlab.services import Services
from splitlab.simulate import generate
from splitlab.simulate.run import simulate_into
from splitlab.store.metrics import upsert_metric


def _expected(
    data: Any,
    *,
    days: int,
    event: str,
    kind: str,
    den: str | None = None,
    extra: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
) -> dict[str, float]:
    """The baseline by its definition: units with an exposure or event in the last ``days``
    days before the newest of either, anchored at their first such moment; per unit the metric
    over its events from the anchor on."""
    exposures = data.exposures.to_pylist() + list(extra)
    events = data.events.to_pylist()
    until = max(row["occurredAt"] for row in exposures + events)
    since = until - timedelta(days=days)
    anchor: dict[str, Any] = {}
    for row in exposures + events:
        moment = row["occurredAt"]
        if since <= moment <= until:
            unit = row["userKey"]
            anchor[unit] = min(anchor.get(unit, moment), moment)
    y: dict[str, float] = defaultdict(float)
    x: dict[str, float] = defaultdict(float)
    for row in events:
        unit = row["userKey"]
        if unit not in anchor or row["occurredAt"] < anchor[unit]:
            continue
        if row["eventType"] == event:
            y[unit] = 1.0 if kind == "binary" else y[unit] + (row["value"] or 0.0)
        if den is not None and row["eventType"] == den:
            x[unit] += 1
    units = list(anchor)
    first_days = {moment.date() for moment in anchor.values()}
    span = (max(first_days) - min(first_days)).days + 1
    ys = np.array([y[u] for u in units])
    if den is None:
        return {"n": len(units), "mean": ys.mean(), "variance": ys.var(ddof=1), "span": span}
    xs = np.array([x[u] for u in units])
    mu_y, mu_x = ys.mean(), xs.mean()
    cov = np.cov(ys, xs, ddof=1)
    ratio = mu_y / mu_x
    variance = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / mu_x**2
    return {"n": len(units), "mean": ratio, "variance": variance}


@pytest.fixture
def simulated(services: Services) -> Any:
    data = generate("aa_null", units=800, days=10, seed=11)
    simulate_into(services, data)
    return data


def test_binary_and_sum_baselines_match_their_definition(
    services: Services, simulated: Any
) -> None:
    for key, kind, days in (("aa-conversion", "binary", 28), ("aa-revenue", "sum", 3)):
        found = metric_baseline(services=services, metric=key, days=days)
        assert found is not None
        want = _expected(simulated, days=days, event="purchase", kind=kind)
        assert found.units == want["n"]
        assert found.mean == pytest.approx(want["mean"], rel=1e-9)
        assert found.variance == pytest.approx(want["variance"], rel=1e-9)
        assert found.daily_units == pytest.approx(want["n"] / min(days, want["span"]))
        assert found.sd == pytest.approx(math.sqrt(want["variance"]))
    # the shorter window sees fewer units
    assert (
        metric_baseline(services=services, metric="aa-revenue", days=3).units  # type: ignore[union-attr]
        < metric_baseline(services=services, metric="aa-revenue", days=28).units  # type: ignore[union-attr]
    )


def test_ratio_baseline_uses_the_delta_method(services: Services, simulated: Any) -> None:
    definition = MetricDefinition.model_validate(
        {
            "key": "revenue-per-session",
            "kind": "ratio",
            "event": "purchase",
            "denominator_event": "session",
        }
    )
    with services.sessions.begin() as session:
        upsert_metric(session=session, definition=definition, actor=LOCAL_ADMIN)
    found = metric_baseline(services=services, metric="revenue-per-session", days=28)
    assert found is not None
    want = _expected(simulated, days=28, event="purchase", kind="sum", den="session")
    assert found.units == want["n"]
    assert found.mean == pytest.approx(want["mean"], rel=1e-9)
    assert found.variance == pytest.approx(want["variance"], rel=1e-9)


def test_no_events_no_baseline_and_bad_requests(services: Services) -> None:
    definition = MetricDefinition.model_validate({"key": "conv", "kind": "binary", "event": "x"})
    quantile = MetricDefinition.model_validate(
        {"key": "p95", "kind": "quantile", "event": "latency", "quantile": 0.95}
    )
    with services.sessions.begin() as session:
        upsert_metric(session=session, definition=definition, actor=LOCAL_ADMIN)
        upsert_metric(session=session, definition=quantile, actor=LOCAL_ADMIN)
    assert metric_baseline(services=services, metric="conv") is None
    with pytest.raises(ValidationError):
        metric_baseline(services=services, metric="p95")
    with pytest.raises(ValidationError):
        metric_baseline(services=services, metric="conv", days=0)
    with pytest.raises(NotFoundError):
        metric_baseline(services=services, metric="nope")


def test_cached_until_the_data_changes(services: Services, simulated: Any) -> None:
    first = metric_baseline(services=services, metric="aa-conversion", days=28)
    assert metric_baseline(services=services, metric="aa-conversion", days=28) is first
    more = generate("aa_null", units=300, days=5, seed=12, key="aa-second")
    simulate_into(services, more)
    again = metric_baseline(services=services, metric="aa-conversion", days=28)
    assert again is not None and first is not None
    assert again.units > first.units  # the new experiment's units are active too


def test_the_window_ends_at_the_newest_exposure_or_event(
    services: Services, simulated: Any
) -> None:
    """Exposures newer than every event (units seen, nothing bought yet) are in the population."""
    newest = max(e["occurredAt"] for e in simulated.events.to_pylist())
    late = [
        {"userKey": f"late-{i}", "occurredAt": newest + timedelta(hours=1, seconds=i)}
        for i in range(5)
    ]
    services.warehouse.start()
    services.warehouse.record_exposures(
        {"experiment_key": "aa_null", "variant_key": "control", "unit_id": row["userKey"],
         "exposed_at": row["occurredAt"]}
        for row in late
    )  # fmt: skip
    found = metric_baseline(services=services, metric="aa-conversion", days=2)
    want = _expected(simulated, days=2, event="purchase", kind="binary", extra=late)
    assert found is not None
    assert found.units == want["n"]
    assert found.mean == pytest.approx(want["mean"], rel=1e-9)

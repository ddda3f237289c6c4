"""The typed snapshot: its JSON form round-trips, snapshots stored by ANALYSIS_VERSION 2 still
read (byte for byte the same JSON), optional fields are absent rather than null where they do
not apply, and views keep that."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pydantic
import pytest

from splitlab.analysis.snapshot import (
    CheckName,
    HealthCheck,
    ResultRow,
    Severity,
    Snapshot,
)
from splitlab.domain import Engine
from tests.analysis.builders import same_numbers

DATA = Path(__file__).parent / "data"
STORED = sorted(DATA.glob("snapshot_v*_*.json"))
"""Payloads as ANALYSIS_VERSION 2 stored them (before the snapshot was typed) and as version 3
stores them (overall rows carry their thresholds)."""
THRESHOLD_KEYS = ("margin", "margin_scale", "min_lift", "min_lift_scale", "p_value_adjusted_cells")
"""What version 3 added to rows (thresholds on overall rows, the correction across a segment's
cells on segment rows); every other value is version 2's."""


def _stored(name: str, version: int = 2) -> dict[str, Any]:
    return json.loads((DATA / f"snapshot_v{version}_{name}.json").read_text())


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.stem)
def test_stored_v2_payloads_read_and_write_back_unchanged(path: Path) -> None:
    stored = json.loads(path.read_text())
    snapshot = Snapshot.from_json(stored)
    assert snapshot.to_json() == stored
    # the JSON text too, key order included (health values read as floats: 3 → 3.0)
    assert json.dumps(snapshot.to_json()) == json.dumps(stored).replace(
        '"value": 3,', '"value": 3.0,'
    )
    assert Snapshot.from_json(snapshot.to_json()) == snapshot


def test_typed_fields() -> None:
    snapshot = Snapshot.from_json(_stored("frequentist"))
    assert snapshot.engine is Engine.FREQUENTIST
    assert snapshot.days == (date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3))
    assert snapshot.watermark.last_ingested_at is not None
    assert snapshot.watermark.last_ingested_at.utcoffset() is not None
    assert [u.variant for u in snapshot.units] == ["control", "b", "c"]
    assert all(isinstance(c.severity, Severity) for c in snapshot.health)
    assert {c.check for c in snapshot.health} >= {CheckName.SRM, CheckName.GUARDRAIL}
    row = snapshot.result("revenue", "b")
    assert row.cuped and row.segment is None and row.engine is Engine.FREQUENTIST
    assert not snapshot.result("converted", "b").cuped
    assert isinstance(snapshot.daily[0].day, date)
    with pytest.raises(KeyError):
        snapshot.result("revenue", "nope")
    with pytest.raises(pydantic.ValidationError):
        row.p_value = 0.5  # frozen


def test_absent_is_not_null() -> None:
    frequentist = Snapshot.from_json(_stored("frequentist")).to_json()
    bayesian = Snapshot.from_json(_stored("bayesian")).to_json()
    for row in frequentist["results"]:
        assert "chance_to_win" not in row and "p_value_adjusted" in row
        assert ("control_mean_adjusted" in row) is (row["metric"] == "revenue")
        assert ("power" in row) is (row["segment"] is None)
    for row in bayesian["results"]:
        assert "chance_to_win" in row and "p_value_adjusted" not in row
    for point in frequentist["daily"]:
        assert "segment" not in point and "power" not in point and "day" in point
    about = [c for c in frequentist["health"] if c["check"] == "guardrail"]
    assert about and all(c["metric"] == "latency_p90" and c["variant"] for c in about)
    srm = next(c for c in frequentist["health"] if c["check"] == "srm")
    assert "metric" not in srm and "variant" not in srm
    # a value that applies but is not finite is null, not absent
    row = ResultRow.model_validate({**frequentist["results"][0], "p_value": None})
    assert row.to_json()["p_value"] is None


def test_views_and_serving() -> None:
    snapshot = Snapshot.from_json(_stored("frequentist"))
    assert "snapshot_id" not in snapshot.to_json()
    served = snapshot.served(snapshot_id=7, cached=True)
    overall = served.view()
    data = overall.to_json()
    assert data["snapshot_id"] == 7 and data["cached"] is True
    assert "daily" not in data and all(r["segment"] is None for r in data["results"])
    by_country = served.view(segment="country", daily=True).to_json()
    assert by_country["results"] and all(
        r["segment"]["name"] == "country" for r in by_country["results"]
    )
    assert by_country["daily"] == snapshot.to_json()["daily"]
    assert served.view(segment="plan").results == ()


def test_unknown_keys_and_values_are_refused() -> None:
    stored = _stored("bayesian")
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        Snapshot.from_json({**stored, "surprise": 1})
    health = [{**stored["health"][0], "severity": "fatal"}]
    with pytest.raises(pydantic.ValidationError, match="severity"):
        Snapshot.from_json({**stored, "health": health})
    with pytest.raises(pydantic.ValidationError):
        HealthCheck(check="vibes", severity="info", value=None, message="")


FIXTURE_RUNS = {
    "frequentist": (
        ("control", "b", "c"),
        {
            "segments": ["country"],
            "mde": 0.05,
            "guardrails": [{"key": "latency_p90", "margin": 0.5}],
        },
    ),
    "bayesian": (("control", "b"), {"engine": "bayesian", "max_days": 14}),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_RUNS))
def test_the_analysis_still_gives_the_stored_numbers(tmp_path: Path, name: str) -> None:
    """The fixtures are these runs as ANALYSIS_VERSION 3 stored them: analysing the same data
    now gives the same JSON, number for number. A change here changes the numbers: bump
    ANALYSIS_VERSION and write new fixtures (and keep the old ones reading)."""
    from splitlab.analysis import build_plan, run_analysis
    from splitlab.warehouse import Warehouse
    from tests.analysis.builders import METRICS, generate, spec

    variants, options = FIXTURE_RUNS[name]
    warehouse = Warehouse.open(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.start()
    try:
        generate(seed=4, n_units=300, days=3, variants=variants).write(warehouse, "checkout")
        plan = build_plan(spec(variants=variants, **options), {m.key: m for m in METRICS}, top_n=2)
        fresh = run_analysis(warehouse=warehouse, plan=plan, watermark=warehouse.watermark())
    finally:
        warehouse.close()
    stored = _stored(name, version=3)
    data = fresh.to_json()
    for key in ("settings", "settings_hash", "units", "days", "results", "daily", "omnibus"):
        assert same_numbers(data[key], stored[key]), key
    assert same_numbers(data.get("heterogeneity"), stored.get("heterogeneity"))
    # marks added later that change no number: ``pending`` (an info finding that cannot pass
    # yet) and ``fading`` (a novelty warning's direction)
    marks = ("pending", "fading")
    health = [{k: v for k, v in check.items() if k not in marks} for check in data["health"]]
    assert same_numbers(health, stored["health"])
    assert any(check.get("pending") for check in data["health"])  # no MDE, or power short


@pytest.mark.parametrize("name", sorted(FIXTURE_RUNS))
def test_version_3_changed_no_number_of_version_2(name: str) -> None:
    """Version 3 only added the thresholds to overall rows (and its own version number)."""
    v2, v3 = _stored(name), _stored(name, version=3)
    assert v3["settings"] == v2["settings"] | {"analysis_version": 3}
    added = [{k: row.pop(k) for k in THRESHOLD_KEYS if k in row} for row in v3["results"]]
    assert any(added) is (name == "frequentist")  # a margin, and segments
    assert ("heterogeneity" in v3) is (name == "frequentist")
    v3.pop("heterogeneity", None)
    for key in ("units", "days", "results", "daily", "omnibus", "health"):
        assert same_numbers(v3[key], v2[key]), key

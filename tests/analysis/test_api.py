"""The analysis API and CLI: analyse, cache hits, invalidation, results views, permissions."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from splitlab.cli import app as cli
from splitlab.config import Settings
from splitlab.domain import Role, Scope
from splitlab.services import Services
from tests.analysis.builders import START, backend_settings, generate, same_numbers
from tests.api.helpers import create_running

METRICS = [
    {"key": "revenue", "kind": "sum", "event": "purchase", "window_hours": 168, "cuped_days": 7},
    {
        "key": "latency",
        "kind": "quantile",
        "event": "page_load",
        "quantile": 0.9,
        "direction": "decrease",
    },
]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The warehouse follows the app store's backend (SQLite + DuckDB, or PostgreSQL)."""
    return backend_settings(request, tmp_path)


@pytest.fixture
def running(
    client: TestClient, services: Services, admin: dict[str, str], reviewer: dict[str, str]
) -> Any:
    for metric in METRICS:
        assert client.post("/api/metrics", json=metric, headers=admin).status_code == 201
    create_running(
        client,
        admin,
        reviewer,
        "checkout",
        variants=[
            {"key": "control", "weight": 0.5, "is_control": True},
            {"key": "b", "weight": 0.5},
        ],
        metrics={"primary": "conversion", "secondary": ["revenue"], "guardrails": ["latency"]},
        plan={"segments": ["country"], "mde": 0.05},
    )
    dataset = generate(seed=21, n_units=400, excluded_share=0.0)
    dataset.write(services.warehouse, "checkout")
    return dataset


def analyze(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.post("/api/experiments/checkout/analyze", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_analyze_then_cache_hit_then_invalidation(
    client: TestClient, services: Services, admin: dict[str, str], running: Any
) -> None:
    first = analyze(client, admin)
    assert first["cached"] is False
    assert first["experiment"] == "checkout"
    assert [u["variant"] for u in first["units"]] == ["control", "b"]
    assert {r["metric"] for r in first["results"]} == {"conversion", "revenue", "latency"}
    cuped = [r for r in first["results"] if r["metric"] == "revenue"]
    assert all("variance_reduction" in r for r in cuped)
    assert all(r["control_mean"] != r["control_mean_adjusted"] for r in cuped)  # raw vs CUPED
    assert {h["check"] for h in first["health"]} >= {"srm", "multiple_exposure", "sample_size"}
    assert all(set(h) >= {"check", "severity", "value", "message"} for h in first["health"])
    assert first["watermark"]["events"] == len(running.events)

    again = analyze(client, admin)
    assert again["cached"] is True
    assert again["snapshot_id"] == first["snapshot_id"]
    assert again["results"] == first["results"]

    forced = analyze(client, admin, refresh="true")
    assert forced["cached"] is False and forced["snapshot_id"] != first["snapshot_id"]

    # new data → new snapshot
    services.warehouse.write_events(
        [
            {
                "unit_id": "u1",
                "event_name": "purchase",
                "value": 5.0,
                "event_id": "late-1",
                "occurred_at": START + timedelta(days=1),
            }
        ]
    )
    fresh = analyze(client, admin)
    assert fresh["cached"] is False
    assert fresh["watermark"]["events"] == len(running.events) + 1
    assert analyze(client, admin)["cached"] is True

    # a new version of a metric definition: the running experiment keeps its pinned version
    changed = {**METRICS[0], "window_hours": 24}
    assert client.post("/api/metrics", json=changed, headers=admin).status_code == 200
    pinned = analyze(client, admin)
    assert pinned["cached"] is True
    assert pinned["settings_hash"] == fresh["settings_hash"]

    # changed settings (the weights) → new snapshot
    weights = {
        "variants": [
            {"key": "control", "weight": 0.6, "is_control": True},
            {"key": "b", "weight": 0.4},
        ]
    }
    assert client.patch("/api/experiments/checkout", json=weights, headers=admin).status_code == 200
    recomputed = analyze(client, admin)
    assert recomputed["cached"] is False
    assert recomputed["settings_hash"] != fresh["settings_hash"]


def test_results_views_and_permissions(
    client: TestClient, keys: Any, admin: dict[str, str], running: Any
) -> None:
    missing = client.get("/api/experiments/checkout/results", headers=admin)
    assert missing.status_code == 404
    assert "analyze" in missing.json()["error"]["message"]
    analyze(client, admin)

    overall = client.get("/api/experiments/checkout/results", headers=admin).json()
    assert overall["results"] and all(r["segment"] is None for r in overall["results"])
    assert "daily" not in overall

    by_country = client.get(
        "/api/experiments/checkout/results", params={"segment": "country"}, headers=admin
    ).json()
    values = {r["segment"]["value"] for r in by_country["results"]}
    assert {"de", "fr"} <= values
    assert all(r["segment"]["name"] == "country" for r in by_country["results"])
    # a segment without results is a 404 in the error shape, as on the experiment page (not an
    # empty list that reads like "no effect anywhere"); an over-long name is a 422
    for params in ({"segment": "nope"}, {"segment": "device", "breakdown": "country"}):
        unknown = client.get("/api/experiments/checkout/results", params=params, headers=admin)
        assert unknown.status_code == 404, unknown.text
        assert set(unknown.json()) == {"error"}
        assert "no results for segment" in unknown.json()["error"]["message"]
        assert "country" in unknown.json()["error"]["message"]  # the segments it has
    long = client.get(
        "/api/experiments/checkout/results", params={"segment": "x" * 5000}, headers=admin
    )
    assert long.status_code == 422 and set(long.json()) == {"error"}

    daily = client.get(
        "/api/experiments/checkout/results", params={"daily": "true"}, headers=admin
    ).json()
    assert {e["day"] for e in daily["daily"]} == set(daily["days"])
    assert all(e["metric"] != "latency" for e in daily["daily"])

    reader = keys.headers("vera", Role.VIEWER, Scope.READ)
    assert client.get("/api/experiments/checkout/results", headers=reader).status_code == 200
    assert client.post("/api/experiments/checkout/analyze", headers=reader).status_code == 403


def test_cli_analyze_formats(
    client: TestClient,
    services: Services,
    admin: dict[str, str],
    running: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = services.settings
    monkeypatch.setenv("SPLITLAB_HOME", str(settings.home))
    monkeypatch.setenv("SPLITLAB_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("SPLITLAB_WAREHOUSE_URL", settings.resolved_warehouse_url())
    monkeypatch.setenv("SPLITLAB_SECRET_KEY", "test-secret")
    stored = analyze(client, admin)
    runner = CliRunner()
    result = runner.invoke(cli, ["analyze", "checkout", "--format", "json"])
    assert result.exit_code == 0, result.output
    snapshot = json.loads(result.output)
    assert snapshot["cached"] is True and snapshot["snapshot_id"] == stored["snapshot_id"]
    table = runner.invoke(cli, ["analyze", "checkout"])
    assert table.exit_code == 0, table.output
    assert "conversion" in table.output and "Health" in table.output
    markdown = runner.invoke(cli, ["analyze", "checkout", "--refresh", "--format", "markdown"])
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output.startswith("## checkout") and "| metric |" in markdown.output
    bad = runner.invoke(cli, ["analyze", "checkout", "--format", "yaml"])
    assert bad.exit_code == 1


def test_background_refresh_analyses_running_experiments(services: Services, running: Any) -> None:
    import asyncio

    from splitlab.analysis import latest
    from splitlab.analysis.background import periodic_refresh
    from splitlab.analysis.snapshot import Snapshot

    services.settings.analysis_refresh_seconds = 0.05

    async def wait_for_snapshot() -> Snapshot:
        async with periodic_refresh(services):
            for _ in range(200):
                await asyncio.sleep(0.05)
                try:
                    return latest(services=services, key="checkout")
                except Exception:
                    continue
        raise AssertionError("no snapshot after 10 s")

    snapshot = asyncio.run(wait_for_snapshot())
    assert snapshot.experiment == "checkout" and snapshot.results


def test_openapi_documents_the_snapshot(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, method in (("results", "get"), ("analyze", "post")):
        operation = document["paths"][f"/api/experiments/{{key}}/{path}"][method]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/Snapshot"}
    snapshot = schemas["Snapshot"]
    assert {"results", "health", "units", "watermark"} <= set(snapshot["required"])
    assert "daily" not in snapshot["required"] and "snapshot_id" not in snapshot["required"]
    row = schemas["ResultRow"]["properties"]
    assert "adjusted for the pre-period covariate" in row["control_mean_adjusted"]["description"]
    assert "control_mean_adjusted" not in schemas["ResultRow"]["required"]
    assert schemas["Severity"]["enum"] == ["info", "warning", "critical"]
    assert "bayesian_horizon" in schemas["CheckName"]["enum"]


def test_a_stored_snapshot_that_no_longer_reads_is_recomputed(
    client: TestClient, services: Services, admin: dict[str, str], running: Any
) -> None:
    from splitlab.store.tables import SnapshotRow

    first = analyze(client, admin)
    with services.sessions.begin() as session:
        row = session.get(SnapshotRow, first["snapshot_id"])
        assert row is not None
        row.payload = {**row.payload, "results": [{"metric": "an older shape"}]}
    stale = client.get("/api/experiments/checkout/results", headers=admin)
    assert stale.status_code == 404
    assert "older version" in stale.json()["error"]["message"]
    again = analyze(client, admin)  # same data and settings, but the stored one does not read
    assert again["cached"] is False and again["snapshot_id"] != first["snapshot_id"]
    assert same_numbers(again["results"], first["results"])  # to the last bits of a sum
    assert client.get("/api/experiments/checkout/results", headers=admin).status_code == 200

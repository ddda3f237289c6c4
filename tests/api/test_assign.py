"""/api/assign, /api/sdk/config and `splitlab assign`: SQLite+DuckDB and PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.api.caches import Allocations
from splitlab.assignment import ExperimentConfig, assign
from splitlab.config import Settings
from splitlab.domain import Role, Scope
from splitlab.services import Services
from tests.api.helpers import create_running, experiment_body, move


@pytest.fixture(autouse=True)
def _no_config_cache_delay(services: Services) -> None:
    """Probe the app store on every request, so an edit is seen by the next request."""
    services.allocations = Allocations(services, check_interval=0, sticky_refresh_interval=60)


@pytest.fixture
def ingest(keys: Any) -> dict[str, str]:
    return keys.headers("collector", Role.EDITOR, Scope.INGEST)


@pytest.fixture
def running(client: TestClient, editor: dict[str, str], reviewer: dict[str, str]) -> None:
    create_running(client, editor, reviewer)


def post(client: TestClient, headers: dict[str, str], unit: Any, **fields: Any) -> Any:
    body = {"experiment": "checkout", "unitId": unit} | fields
    return client.post("/api/assign", json=body, headers=headers)


def set_weights(client: TestClient, editor: dict[str, str], control: float, new: float) -> None:
    variants = [
        {"key": "control", "weight": control, "is_control": True},
        {"key": "one-page", "weight": new, "payload": {"layout": "single"}},
    ]
    response = client.patch(
        "/api/experiments/checkout",
        json={"variants": variants, "reason": "move traffic"},
        headers=editor,
    )
    assert response.status_code == 200, response.text


def settle(client: TestClient, services: Services) -> None:
    """Wait until the exposures /api/assign buffered are committed."""
    buffer = services.exposure_buffer
    if buffer is not None:
        client.portal.call(buffer.drain)


def exposures(services: Services, key: str = "checkout") -> dict[str, tuple[str, str]]:
    rows = services.warehouse.query(
        "SELECT unit_id, variant_key, CAST(attributes AS VARCHAR) FROM exposures "
        "WHERE experiment_key = ?" if services.warehouse.dialect == "duckdb" else
        "SELECT unit_id, variant_key, attributes::text FROM exposures WHERE experiment_key = %s",
        [key],
    )  # fmt: skip
    return {unit: (variant, attributes) for unit, variant, attributes in rows}


def test_assign_records_the_exposure_once_with_attributes(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    first = post(client, ingest, "u1", attributes={"country": "NL"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["inExperiment"] is True and body["reason"] == "assigned"
    assert body["variant"] in ("control", "one-page")
    expected = {"control": None, "one-page": {"layout": "single"}}[body["variant"]]
    assert body["payload"] == expected
    assert post(client, ingest, "u1").json() == body  # same answer, exposure not repeated
    settle(client, services)
    stored = exposures(services)
    assert list(stored) == ["u1"]
    assert stored["u1"][0] == body["variant"] and '"NL"' in stored["u1"][1]

    assert post(client, ingest, "u2", record=False).json()["inExperiment"] is True
    assert post(client, ingest, 12345).status_code == 200  # numeric ids are ids too
    settle(client, services)
    assert set(exposures(services)) == {"u1", "12345"}


def test_answers_match_local_evaluation_of_the_sdk_config(
    client: TestClient, ingest: dict, running: None
) -> None:
    config = client.get("/api/sdk/config", headers=ingest).json()["experiments"][0]
    local = ExperimentConfig.from_dict(config)
    for i in range(100):
        remote = post(client, ingest, f"user-{i}", record=False).json()
        mine = assign(local, f"user-{i}")
        assert (remote["variant"], remote["reason"]) == (mine.variant, mine.reason)


def test_not_running_unknown_and_bad_bodies(
    client: TestClient, editor: dict, reviewer: dict, ingest: dict, running: None
) -> None:
    assert client.post(
        "/api/experiments", json=experiment_body("draft-one"), headers=editor
    ).status_code == 201  # fmt: skip
    inactive = client.post("/api/assign", json={"experiment": "draft-one", "unitId": "u1"},
                           headers=ingest)  # fmt: skip
    assert inactive.status_code == 200
    assert inactive.json() == {
        "variant": None,
        "payload": None,
        "inExperiment": False,
        "reason": "inactive",
    }
    move(client, "checkout", "stopped", editor)
    assert post(client, ingest, "u1").json()["reason"] == "inactive"

    missing = client.post("/api/assign", json={"experiment": "nope", "unitId": "u"},
                          headers=ingest)  # fmt: skip
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    def field_of(body: Any) -> str:
        response = client.post("/api/assign", json=body, headers=ingest)
        assert response.status_code == 422, response.text
        return str(response.json()["error"]["details"][0]["loc"][0])

    assert field_of({"unitId": "u"}) == "experiment"
    assert field_of({"experiment": "checkout"}) == "unitId"
    assert field_of({"experiment": "checkout", "unitId": ""}) == "unitId"
    assert field_of({"experiment": "checkout", "unitId": "u", "attributes": [1]}) == "attributes"
    assert field_of({"experiment": "checkout", "unitId": "u", "record": "yes"}) == "record"
    assert field_of([1]) == "(body)"
    broken = client.post("/api/assign", content=b"{oops", headers=ingest)
    assert broken.status_code == 400


@pytest.mark.parametrize("unit", ["u\x00v", "u\x1fv", "u\x7fv", "u\x85v"])
def test_a_unit_id_with_control_characters_is_refused_as_track_refuses_it(
    client: TestClient, services: Services, ingest: dict, running: None, unit: str
) -> None:
    """/api/assign records exposures under the unit id: it keeps the same keys out as
    /api/track does for userKey (C0, DEL and C1 controls)."""
    raw = json.dumps({"experiment": "checkout", "unitId": unit})
    headers = ingest | {"content-type": "application/json"}
    assigned = client.post("/api/assign", content=raw.encode(), headers=headers)
    assert assigned.status_code == 422, assigned.text
    assert assigned.json()["error"]["details"][0]["loc"] == ["unitId"]
    event = {
        "experimentKey": "checkout", "variantKey": "control", "userKey": unit,
        "eventType": "exposure",
    }  # fmt: skip
    tracked = client.post("/api/track", content=json.dumps(event).encode(), headers=headers)
    assert tracked.status_code == 422, tracked.text
    settle(client, services)
    assert exposures(services) == {}


def test_scopes(client: TestClient, keys: Any, ingest: dict, running: None) -> None:
    reader = keys.headers("viewer", Role.VIEWER, Scope.READ)
    assert post(client, reader, "u1").status_code == 403
    assert post(client, {}, "u1").status_code == 401
    assert post(client, ingest, "u1").status_code == 200
    assert client.get("/api/sdk/config", headers=reader).status_code == 200
    assert client.get("/api/sdk/config", headers=ingest).status_code == 200
    assert client.get("/api/sdk/config").status_code == 401


def test_sdk_config_etag(client: TestClient, editor: dict, ingest: dict, running: None) -> None:
    first = client.get("/api/sdk/config", headers=ingest)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.strip('"') == first.json()["version"]
    (config,) = first.json()["experiments"]
    assert config["key"] == "checkout" and config["seed"] == "checkout"
    assert [v["weight"] for v in config["variants"]] == [0.5, 0.5]
    cached = client.get("/api/sdk/config", headers=ingest | {"If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["etag"] == etag and not cached.content

    set_weights(client, editor, 0.2, 0.8)
    changed = client.get("/api/sdk/config", headers=ingest | {"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [v["weight"] for v in changed.json()["experiments"][0]["variants"]] == [0.2, 0.8]


def test_sticky_across_a_weight_change(
    client: TestClient, services: Services, editor: dict, ingest: dict, running: None
) -> None:
    before = {f"u{i}": post(client, ingest, f"u{i}").json()["variant"] for i in range(120)}
    assert 35 < sum(v == "control" for v in before.values()) < 85
    unrecorded = [f"q{i}" for i in range(100)]
    for unit in unrecorded:
        post(client, ingest, unit, record=False)

    set_weights(client, editor, 0.1, 0.9)

    again = {unit: post(client, ingest, unit).json() for unit in before}
    assert {unit: a["variant"] for unit, a in again.items()} == before
    moved = [unit for unit, a in again.items() if a["reason"] == "sticky"]
    assert moved, "some units must be held in place by sticky bucketing"
    # units never recorded follow the new weights (90% one-page), as do brand-new ones
    fresh = [post(client, ingest, unit).json()["variant"] for unit in unrecorded]
    fresh += [post(client, ingest, f"new{i}").json()["variant"] for i in range(100)]
    assert sum(v == "one-page" for v in fresh) > 0.8 * len(fresh)
    settle(client, services)
    assert len(exposures(services)) == 320
    conflicts = services.warehouse.query("SELECT count(*) FROM exposure_conflicts")[0][0]
    assert conflicts == 0


def test_cli_assign_uses_stored_config_and_sticky_assignments(
    client: TestClient,
    services: Services,
    settings: Settings,
    editor: dict,
    ingest: dict,
    running: None,
    tmp_path: Path,
) -> None:
    exposed = {f"u{i}": post(client, ingest, f"u{i}").json()["variant"] for i in range(100)}
    set_weights(client, editor, 0.0, 1.0)
    settle(client, services)
    units = tmp_path / "units.csv"
    units.write_text("user\n" + "".join(f"u{i}\n" for i in range(150)))
    out = tmp_path / "out.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLITLAB_")} | {
        "SPLITLAB_HOME": str(settings.home),
        "SPLITLAB_DATABASE_URL": settings.resolved_database_url(),
        "SPLITLAB_WAREHOUSE_URL": settings.resolved_warehouse_url(),
    }

    def cli() -> subprocess.CompletedProcess[str]:
        args = ["assign", "checkout", "--units", str(units), "--out", str(out)]
        return subprocess.run(
            [sys.executable, "-m", "splitlab.cli", *args, "--unit-column", "user"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    if services.warehouse.dialect == "duckdb":
        # the server owns the DuckDB file: the CLI warns and assigns without sticky
        busy = cli()
        assert busy.returncode == 0, busy.stderr
        assert "warning:" in busy.stderr and "sticky" in busy.stderr
        assert "one-page: 150" in busy.stdout
        services.close()  # as if the server stopped
    result = cli()
    assert result.returncode == 0, result.stderr
    with out.open() as handle:
        rows = {row["user"]: row for row in csv.DictReader(handle)}
    assert {u: rows[u]["variant"] for u in exposed} == exposed
    assert all(rows[f"u{i}"]["variant"] == "one-page" for i in range(100, 150))
    assert {rows[u]["reason"] for u in exposed} == {"sticky"}
    controls = sum(v == "control" for v in exposed.values())
    assert f"control: {controls}" in result.stdout
    assert "100 units with a stored assignment" in result.stdout


def test_clean_shutdown_drains_buffered_exposures(
    services: Services, settings: Settings, keys: Any
) -> None:
    from splitlab.api.assign import ExposureBuffer
    from splitlab.app import create_app
    from splitlab.warehouse import Warehouse

    editor = keys.headers("ed", Role.EDITOR)
    reviewer = keys.headers("rita", Role.REVIEWER)
    ingest = keys.headers("collector", Role.EDITOR, Scope.INGEST)
    with TestClient(create_app(services=services)) as client:
        create_running(client, editor, reviewer)
        allocations = services.allocations
        assert allocations is not None
        # nothing is written before shutdown unless the lifespan drains the buffer
        services.exposure_buffer = ExposureBuffer(services, allocations, max_delay=600)
        for i in range(50):
            assert post(client, ingest, f"u{i}").status_code == 200
        assert services.warehouse.query("SELECT count(*) FROM exposures") == [(0,)]
    warehouse = Warehouse.open(settings.resolved_warehouse_url(), read_only=True)
    try:
        assert warehouse.query("SELECT count(*) FROM exposures") == [(50,)]
    finally:
        warehouse.close()

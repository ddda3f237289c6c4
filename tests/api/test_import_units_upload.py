"""POST /api/import/units: a per-unit table over HTTP (raw body or multipart), on both
backends — the same validation and upsert as ``splitlab import units``."""

from __future__ import annotations

from fastapi.testclient import TestClient

from splitlab.services import Services
from tests.api import test_ingest as base

settings, ingest = base.settings, base.ingest

CSV = "user_id,revenue_30d,country\nu1,10.5,de\nu2,,fr\n,3,de\nu1,7,de\n"


def test_units_upload_validates_and_writes(
    client: TestClient, services: Services, ingest: dict
) -> None:
    params = [("map", "user_id:unit_id"), ("format", "csv")]
    preview = client.post(
        "/api/import/units",
        content=CSV.encode(),
        params=[*params, ("preview", "1")],
        headers=ingest,
    )
    assert preview.status_code == 200, preview.text
    report = preview.json()
    assert report["kind"] == "units" and not report["written"]
    assert [c["use"] for c in report["columns"]] == ["unit_id", "value", "attribute"]
    assert report["rows"] == 4 and report["rejected"] == 2
    assert services.warehouse.query("SELECT count(*) FROM unit_values")[0][0] == 0
    written = client.post(
        "/api/import/units",
        files={"file": ("users.csv", CSV.encode(), "text/csv")},
        params=[("map", "user_id:unit_id")],
        headers=ingest,
    )
    assert written.status_code == 200, written.text
    assert written.json()["accepted"] == 2 and written.json()["values"] == 1
    assert written.json()["attributes"] == 2
    assert written.json()["file"] == "upload.csv"
    stored = services.warehouse.query("SELECT unit_id, name, value FROM unit_values")
    assert stored == [("u1", "revenue_30d", 10.5)]
    texts = sorted(services.warehouse.query("SELECT unit_id, name, text FROM unit_attributes"))
    assert texts == [("u1", "country", "de"), ("u2", "country", "fr")]


def test_units_upload_refusals(client: TestClient, ingest: dict) -> None:
    bad = client.post(
        "/api/import/units",
        content=b"\x00\x01garbage",
        params={"format": "parquet"},
        headers=ingest,
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    no_numbers = client.post(
        "/api/import/units",
        content=b"unit_id\nu1\n",
        params={"format": "csv"},
        headers=ingest,
    )
    assert no_numbers.status_code == 422
    assert "numeric or text column" in no_numbers.json()["error"]["message"]
    unknown = client.post("/api/import/nope", content=b"a\n", headers=ingest)
    assert unknown.status_code == 422 and "units" in unknown.json()["error"]["message"]

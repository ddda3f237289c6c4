"""POST /api/import/{kind}: the file import over HTTP (raw body or multipart), on both backends."""

from __future__ import annotations

import io
from typing import Any

import duckdb
from fastapi.testclient import TestClient

from splitlab.domain import Role, Scope
from splitlab.services import Services
from tests.api import test_ingest as base
from tests.api.test_ingest import counts

# the ingest tests' fixtures: the warehouse on the app store's backend, an ingest key, a
# running experiment
settings, ingest, running = base.settings, base.ingest, base.running

CSV = (
    "exp,user_id,eventType,value,eventId\n"
    "checkout,u1,purchase,10,e1\n"
    "checkout,u2,purchase,abc,e2\n"  # bad value
    "checkout,u3,purchase,3,e1\n"  # duplicate id
    "nope,u4,purchase,1,e4\n"  # unknown experiment
)
MAP = [("map", "exp:experimentKey"), ("map", "user_id:userKey")]


def upload(client: TestClient, headers: dict, path: str, body: bytes, **params: Any) -> Any:
    query = MAP + list(params.items())
    return client.post(path, content=body, params=query, headers=headers)


def test_preview_and_dry_run_report_without_writing(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    preview = upload(client, ingest, "/api/import/events", CSV.encode(), format="csv", preview=1)
    assert preview.status_code == 200, preview.text
    report = preview.json()
    assert (report["rows"], report["rejected"], report["written"]) == (4, 2, False)
    assert [c["name"] for c in report["columns"]][:2] == ["exp", "user_id"]
    assert len(report["preview"]) == 4 and report["preview"][0]["unit_id"] == "u1"
    reasons = {r["reason"].split(":")[0]: r["examples"] for r in report["reasons"]}
    assert reasons == {"value": [2], "experimentKey": [4]}
    dry = upload(client, ingest, "/api/import/events", CSV.encode(), format="csv", dry_run=1)
    assert dry.json()["preview"] == [] and dry.json()["rejected"] == 2
    assert counts(services) == (0, 0, 0)


def test_raw_csv_and_multipart_parquet_are_written_once(
    client: TestClient, services: Services, ingest: dict, running: None, tmp_path: Any
) -> None:
    first = upload(client, ingest, "/api/import/events", CSV.encode(), format="csv").json()
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (1, 1, 2)
    assert first["written"] is True and first["file"] == "upload.csv"

    parquet = tmp_path / "more.parquet"
    duckdb.sql(
        "COPY (SELECT 'checkout' AS experimentKey, 'u' || i AS userKey, 'purchase' AS eventType, "
        f"'e' || i AS eventId FROM range(1, 6) r(i)) TO '{parquet}' (FORMAT parquet)"
    )
    files = {"file": ("more.parquet", io.BytesIO(parquet.read_bytes()), "application/x-parquet")}
    second = client.post("/api/import/events", files=files, headers=ingest)
    assert second.status_code == 200, second.text
    assert (second.json()["accepted"], second.json()["duplicates"]) == (4, 1)  # e1 is stored
    assert counts(services) == (0, 5, 0)


def test_exposures_upload_records_conflicts(
    client: TestClient, services: Services, ingest: dict, running: None
) -> None:
    body = (
        '{"experimentKey": "checkout", "variantKey": "control", "userKey": "u1"}\n'
        '{"experimentKey": "checkout", "variantKey": "one-page", "userKey": "u1"}\n'
    )
    response = client.post(
        "/api/import/exposures", content=body, params={"format": "jsonl"}, headers=ingest
    )
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["conflicts"]) == (1, 1)
    assert counts(services) == (1, 0, 1)


def test_bad_requests_name_the_parameter(
    client: TestClient, ingest: dict, keys: Any, running: None
) -> None:
    def field(response: Any) -> str:
        return str(response.json()["error"]["details"][0]["loc"][0])

    no_format = client.post("/api/import/events", content=CSV, headers=ingest)
    assert no_format.status_code == 422 and field(no_format) == "format"
    bad_kind = upload(client, ingest, "/api/import/users", CSV.encode(), format="csv")
    assert bad_kind.status_code == 422 and field(bad_kind) == "kind"
    bad_map = client.post(
        "/api/import/events", content=CSV, params={"format": "csv", "map": "x"}, headers=ingest
    )
    assert bad_map.status_code == 422 and field(bad_map) == "map"
    unknown_column = client.post(
        "/api/import/events",
        content=CSV,
        params={"format": "csv", "map": "nope:userKey"},
        headers=ingest,
    )
    assert unknown_column.status_code == 422 and field(unknown_column) == "map"
    broken = client.post(
        "/api/import/events", content=b"PAR1garbage", params={"format": "parquet"}, headers=ingest
    )
    assert broken.status_code == 422 and field(broken) == "file"
    empty = client.post("/api/import/events", params={"format": "csv"}, headers=ingest)
    assert empty.status_code == 422 and field(empty) == "file"
    reader = keys.headers("reader", Role.EDITOR, Scope.READ)
    assert upload(client, reader, "/api/import/events", b"x", format="csv").status_code == 403
    assert upload(client, {}, "/api/import/events", b"x", format="csv").status_code == 401

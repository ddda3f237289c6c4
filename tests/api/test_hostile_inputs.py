"""Hostile inputs get a 4xx in the error shape, never a 500 or a plain-text body; the
documented limits hold; definitions stored before a limit existed still read (both backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.api import experiments as experiments_api
from splitlab.api import ingest as ingest_api
from splitlab.app import create_app
from splitlab.domain import limits
from splitlab.services import Services
from splitlab.store.experiments import get_experiment
from splitlab.store.metrics import get_metric
from tests.api.helpers import METRIC, create_running, experiment_body

LIMIT = 2 * 1024 * 1024  # a 1 MB hypothesis gets through to validation


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": LIMIT}


@pytest.fixture
def metric(client: TestClient, admin: dict[str, str]) -> None:
    """The metric ``experiment_body`` uses (a draft must name defined metrics)."""
    assert client.post("/api/metrics", json=METRIC, headers=admin).status_code == 201


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The ``error`` object of a JSON error answer with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error  # type: ignore[no-any-return]


def field_of(response: Any) -> str:
    """The dotted field path of a 422's first problem."""
    loc = error_of(response, 422)["details"][0]["loc"]
    return ".".join(str(part) for part in loc)


def raw_post(client: TestClient, path: str, text: str, headers: dict[str, str]) -> Any:
    return client.post(
        path, content=text.encode(), headers=headers | {"content-type": "application/json"}
    )


# ---------------------------------------------------------------- numbers and JSON


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "NaN", "Infinity"])
def test_non_finite_numbers_name_their_field(
    client: TestClient, admin: dict[str, str], literal: str
) -> None:
    body = json.dumps(experiment_body()).replace('"weight": 0.5', f'"weight": {literal}', 1)
    assert field_of(raw_post(client, "/api/experiments", body, admin)) == "variants.0.weight"
    plan = json.dumps(experiment_body("mde") | {"plan": {"mde": 1}}).replace("1}", f"{literal}}}")
    assert field_of(raw_post(client, "/api/experiments", plan, admin)) == "plan.mde"
    metric = json.dumps(METRIC | {"margin": 1}).replace('"margin": 1', f'"margin": {literal}')
    assert field_of(raw_post(client, "/api/metrics", metric, admin)) == "margin"
    assert client.get("/api/experiments", headers=admin).json()["count"] == 0


def test_rebalance_refuses_non_finite_means_and_negative_variances(
    client: TestClient, admin: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer, type="bandit")
    url = "/api/experiments/checkout/rebalance"
    huge = '{"posteriorMeans": [1e400, 0.1], "posteriorVariances": [0.01, 0.01]}'
    assert field_of(raw_post(client, url, huge, admin)) == "posteriorMeans.0"
    negative = {"posteriorMeans": [0.1, 0.2], "posteriorVariances": [0.01, -0.01]}
    assert field_of(client.post(url, json=negative, headers=admin)) == "posteriorVariances.1"
    alone = {"posteriorMeans": [0.1, 0.2]}
    assert field_of(client.post(url, json=alone, headers=admin)) == "posteriorVariances"
    fine = {"posteriorMeans": [0.1, 0.2], "posteriorVariances": [0.0001, 0.0001], "seed": 1}
    answer = client.post(url, json=fine, headers=admin)
    assert answer.status_code == 200, answer.text
    weights = [
        v["weight"]
        for v in client.get("/api/experiments/checkout", headers=admin).json()["variants"]
    ]
    assert weights[1] > weights[0]


def test_malformed_json_is_400_in_the_error_shape(
    client: TestClient, admin: dict[str, str]
) -> None:
    for path in ("/api/experiments", "/api/metrics", "/api/track", "/api/assign"):
        error = error_of(raw_post(client, path, '{"key": ', admin), 400)
        assert error["message"].startswith("malformed JSON body")


def test_deep_nesting_is_refused_before_it_reaches_a_route(
    client: TestClient, admin: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer)
    very_deep = "[" * 2000 + "]" * 2000
    track = (
        '{"experimentKey": "checkout", "variantKey": "control", "userKey": "u1", '
        f'"eventType": "purchase", "props": {{"a": {very_deep}}}}}'
    )
    for path, text in [
        ("/api/track", track),
        ("/api/events", f'{{"events": [{track}]}}'),
        ("/api/experiments", f'{{"key": "x", "variants": {very_deep}}}'),
    ]:
        error_of(raw_post(client, path, text, admin), 422)
    deep = json.loads("[" * 300 + "]" * 300)
    body = experiment_body("deep")
    body["variants"][1]["payload"] = deep
    error_of(client.post("/api/experiments", json=body, headers=admin), 422)
    error_of(client.post("/api/metrics", json=METRIC | {"filter": {"a": deep}}, headers=admin), 422)


def test_payload_and_filter_limits(client: TestClient, admin: dict[str, str], metric: None) -> None:
    nested: Any = "leaf"
    for _ in range(limits.MAX_JSON_DEPTH + 1):  # one level more than allowed
        nested = {"a": nested}
    body = experiment_body()
    body["variants"][1]["payload"] = nested
    assert (
        field_of(client.post("/api/experiments", json=body, headers=admin)) == "variants.1.payload"
    )
    body["variants"][1]["payload"] = nested["a"]  # at the limit
    assert client.post("/api/experiments", json=body, headers=admin).status_code == 201
    big = experiment_body("big")
    big["variants"][1]["payload"] = {"blob": "x" * limits.MAX_JSON_BYTES}
    assert (
        field_of(client.post("/api/experiments", json=big, headers=admin)) == "variants.1.payload"
    )

    for bad in ({"a": {"b": 1}}, {"$..*": 1}, {"a": "x\x00"}, {"a": [[1]]}):
        metric = METRIC | {"filter": bad}
        assert field_of(client.post("/api/metrics", json=metric, headers=admin)) == "filter"
    good = METRIC | {
        "key": "filtered",
        "filter": {"country": ["DE", "NL"], "page.type": "checkout", "paid": True},
    }
    assert client.post("/api/metrics", json=good, headers=admin).status_code == 201


# ---------------------------------------------------------------- names the warehouse reads


@pytest.mark.parametrize("name", ["$..*", "", "a b", "$.a", "a[0]", "a..b", "x" * 201])
def test_value_field_and_segments_are_property_names(
    client: TestClient, admin: dict[str, str], name: str
) -> None:
    metric = METRIC | {"kind": "sum", "value_field": name}
    assert field_of(client.post("/api/metrics", json=metric, headers=admin)) == "value_field"
    body = experiment_body() | {"plan": {"segments": ["country", name]}}
    assert field_of(client.post("/api/experiments", json=body, headers=admin)) == "plan.segments.1"


def test_definitions_stored_before_the_limits_still_read_and_analysis_says_why_not(
    client: TestClient, services: Services, admin: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer)
    with services.sessions.begin() as session:
        row = get_experiment(session=session, key="checkout")
        row.plan = row.plan | {"segments": [""]}
        row.start_at = datetime(1, 1, 1, tzinfo=UTC)
        row.tags = ["t"] * (limits.MAX_TAGS + 1)
        get_metric(session=session, key="conversion").value_field = "$..*"

    shown = client.get("/api/experiments/checkout", headers=admin)
    assert shown.status_code == 200, shown.text
    assert shown.json()["start_at"].startswith("0001-01-01")
    assert client.get("/api/experiments", headers=admin).json()["count"] == 1
    assert client.get("/api/metrics", headers=admin).status_code == 200
    error = error_of(client.post("/api/experiments/checkout/analyze", headers=admin), 422)
    assert "plan.segments[0]" in error["message"]
    legacy = client.get("/api/metrics/conversion", headers=admin)
    assert legacy.status_code == 200 and legacy.json()["value_field"] == "$..*"


def test_import_works_beside_a_stored_start_at_in_year_one(
    client: TestClient, services: Services, admin: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer)
    assert (
        client.post("/api/experiments", json=experiment_body("old"), headers=admin).status_code
        == 201
    )
    with services.sessions.begin() as session:
        get_experiment(session=session, key="old").start_at = datetime(1, 1, 1, tzinfo=UTC)
    csv = "experimentKey,variantKey,userKey,eventType\ncheckout,control,u1,exposure\n"
    report = client.post(
        "/api/import/exposures", params={"format": "csv"}, content=csv.encode(), headers=admin
    )
    assert report.status_code == 200, report.text
    assert report.json()["accepted"] == 1


# ---------------------------------------------------------------- free text and dates


@pytest.mark.parametrize("field", ["name", "hypothesis", "team", "owner", "predicted_outcome"])
def test_nul_and_control_characters_are_refused(
    client: TestClient, admin: dict[str, str], metric: None, field: str
) -> None:
    body = experiment_body() | {field: "a\x00b"}
    assert field_of(client.post("/api/experiments", json=body, headers=admin)) == field
    assert client.get("/api/experiments/checkout", headers=admin).status_code == 404
    body = experiment_body() | {field: "a\x1bb"}
    assert field_of(client.post("/api/experiments", json=body, headers=admin)) == field


def test_nul_in_notes_metric_events_reviews_and_urls(
    client: TestClient, admin: dict[str, str], metric: None
) -> None:
    assert client.post("/api/experiments", json=experiment_body(), headers=admin).status_code == 201
    note = client.post("/api/experiments/checkout/notes", json={"body": "a\x00b"}, headers=admin)
    assert field_of(note) == "body"
    multiline = {"body": "line one\n\tline two"}
    assert (
        client.post("/api/experiments/checkout/notes", json=multiline, headers=admin).status_code
        == 201
    )
    metric = METRIC | {"key": "nul", "event": "pur\x00chase"}
    assert field_of(client.post("/api/metrics", json=metric, headers=admin)) == "event"
    move = {"to": "review", "reason": "a\x00b"}
    assert (
        field_of(client.post("/api/experiments/checkout/transitions", json=move, headers=admin))
        == "reason"
    )
    for url in ("/api/experiments/a%00b", "/api/experiments?q=a%00b", "/api/metrics/%00"):
        error_of(client.get(url, headers=admin), 422)


def test_free_text_and_list_limits(client: TestClient, admin: dict[str, str], metric: None) -> None:
    def refused(**fields: Any) -> str:
        return field_of(
            client.post("/api/experiments", json=experiment_body(**fields), headers=admin)
        )

    assert refused(hypothesis="x" * 1_000_000) == "hypothesis"
    assert refused(name="x" * (limits.MAX_NAME + 1)) == "name"
    assert refused(tags=["t"] * 10_000) == "tags"
    variants = [{"key": f"v{i}", "weight": 0.01} for i in range(limits.MAX_VARIANTS * 2)]
    assert refused(variants=variants) == "variants"
    assert refused(tags=["x" * (limits.MAX_SHORT_TEXT + 1)]) == "tags.0"
    at_limit = experiment_body(
        hypothesis="x" * limits.MAX_TEXT,
        tags=[f"t{i}" for i in range(limits.MAX_TAGS)],
        variants=[
            {"key": f"v{i}", "weight": 1 / limits.MAX_VARIANTS, "is_control": i == 0}
            for i in range(limits.MAX_VARIANTS)
        ],
    )
    assert client.post("/api/experiments", json=at_limit, headers=admin).status_code == 201
    long_note = {"body": "x" * (limits.MAX_NOTE + 1)}
    assert (
        field_of(client.post("/api/experiments/checkout/notes", json=long_note, headers=admin))
        == "body"
    )


def test_dates_are_in_range_and_ordered(
    client: TestClient, admin: dict[str, str], metric: None
) -> None:
    for start in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"):
        body = experiment_body(start_at=start)
        assert field_of(client.post("/api/experiments", json=body, headers=admin)) == "start_at"
    backwards = experiment_body(start_at="2024-02-01T00:00:00Z", end_at="2024-01-01T00:00:00Z")
    assert (
        "end_at"
        in error_of(client.post("/api/experiments", json=backwards, headers=admin), 422)["message"]
    )
    ordered = experiment_body(start_at="2024-01-01T00:00:00Z", end_at="2024-02-01T00:00:00Z")
    assert client.post("/api/experiments", json=ordered, headers=admin).status_code == 201
    patch = {"end_at": "2023-12-01T00:00:00Z"}  # before the stored start
    error_of(client.patch("/api/experiments/checkout", json=patch, headers=admin), 422)
    both = {"start_at": "2024-03-01T00:00:00Z", "end_at": "2024-02-01T00:00:00Z"}
    error_of(client.patch("/api/experiments/checkout", json=both, headers=admin), 422)


# ---------------------------------------------------------------- bodies, errors, search


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON-looking body of ``total`` bytes, sent without a Content-Length (chunked)."""
    yield b'{"key": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


@pytest.mark.parametrize(
    "path", ["/api/experiments", "/api/track", "/api/events", "/api/import/events?format=csv"]
)
def test_chunked_bodies_over_the_limit_are_413(
    client: TestClient, admin: dict[str, str], path: str
) -> None:
    response = client.post(
        path, content=chunks(2 * LIMIT), headers=admin | {"content-type": "application/json"}
    )
    error_of(response, 413)
    csv = client.post(path, content=chunks(2 * LIMIT), headers=admin | {"content-type": "text/csv"})
    assert csv.status_code == 413, csv.text


def test_import_errors_name_the_file_not_the_server_paths_or_sql(
    client: TestClient, admin: dict[str, str]
) -> None:
    for fmt, body in (("parquet", b"not parquet"), ("jsonl", b"{garbage\n"), ("csv", b"\x00\x01")):
        answer = client.post(
            "/api/import/events", params={"format": fmt}, content=body, headers=admin
        )
        assert answer.status_code in (200, 422), answer.text
        text = answer.text
        assert "/tmp" not in text and "splitlab-upload" not in text
        assert "SELECT" not in text and "LINE 1" not in text


def test_a_404_does_not_echo_a_huge_key(client: TestClient, admin: dict[str, str]) -> None:
    key = "k" * 60_000
    for url in (f"/api/experiments/{key}", f"/api/metrics/{key}"):
        response = client.get(url, headers=admin)
        error_of(response, 404)
        assert len(response.content) < 5_000


def test_search_is_literal(client: TestClient, admin: dict[str, str], metric: None) -> None:
    for key, name in (("pct", "Discount 50% off"), ("plain", "Discount"), ("under", "a_b")):
        body = experiment_body(key, name=name)
        assert client.post("/api/experiments", json=body, headers=admin).status_code == 201

    def found(q: str) -> list[str]:
        response = client.get("/api/experiments", params={"q": q}, headers=admin)
        return sorted(e["key"] for e in response.json()["experiments"])

    assert found("%") == ["pct"]
    assert found("_") == ["under"]
    assert found("discount") == ["pct", "plain"]
    assert (
        field_of(client.get("/api/experiments", params={"q": "x" * 201}, headers=admin))
        == "query.q"
    )


def test_an_unexpected_failure_is_a_500_in_the_error_shape_without_internals(
    services: Services, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "psycopg.errors: SELECT * FROM experiments -- /srv/splitlab/secret.py line 42"

    def explode(**_: Any) -> Any:
        raise RuntimeError(secret)

    monkeypatch.setattr(experiments_api.repo, "list_experiments", explode)
    monkeypatch.setattr(ingest_api, "parse_item", explode)
    with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
        for response in (
            client.get("/api/experiments", headers=admin),
            client.post("/api/track", json={"userKey": "u", "eventType": "x"}, headers=admin),
        ):
            error = error_of(response, 500)
            assert error["code"] == "internal_error"
            assert len(error["details"]["incident"]) == 12
            assert "SELECT" not in response.text and "/srv" not in response.text
            assert "Traceback" not in response.text

"""``GET /api/experiments/{key}/factorial`` and ``.../interactions?with=OTHER``: the results
of the shipped scenarios, and every documented 4xx in the error shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.services import Services
from splitlab.simulate import generate
from splitlab.simulate.run import simulate_into
from tests.api.helpers import create_running

START = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def simulated(services: Services) -> Services:
    for name in ("factorial_2x2", "interacting_experiments"):
        simulate_into(services, generate(name, units=8_000, start=START))
    return services


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    return body["error"]


def test_factorial_route_serves_the_anova_table(
    client: TestClient, admin: dict[str, str], simulated: Services
) -> None:
    response = client.get("/api/experiments/factorial_2x2/factorial", headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [f["name"] for f in body["factors"]] == ["layout", "price"]
    assert {c["variant"]: c["levels"] for c in body["cells"]}["layout_new_price_low"] == {
        "layout": "new",
        "price": "low",
    }
    conversion = next(m for m in body["metrics"] if m["metric"] == "ff-conversion")
    terms = [e["term"] for e in conversion["effects"]]
    assert terms == ["layout", "price", "layout × price"]
    for row in conversion["effects"]:
        assert row["ci_low"] < row["effect"] < row["ci_high"]
        assert row["f"] == pytest.approx(row["t"] ** 2)
    assert "typ=3" in body["anova"]


def test_interactions_route_answers_with_the_other_experiment(
    client: TestClient, admin: dict[str, str], simulated: Services
) -> None:
    response = client.get(
        "/api/experiments/interacting_experiments/interactions",
        params={"with": "interacting-banner"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["shared"] == body["units"] == 8_000
    metric = body["metrics"][0]
    assert [(i["variant"], i["other_variant"]) for i in metric["interactions"]] == [
        ("treatment", "banner")
    ]
    assert metric["f_df"][0] == 1


def test_errors_are_documented_4xx(
    client: TestClient, admin: dict[str, str], reviewer: dict[str, str], simulated: Services
) -> None:
    _error(client.get("/api/experiments/nope/factorial", headers=admin), 404, "not_found")
    create_running(client, admin, reviewer)  # an A/B test: not factorial
    error = _error(
        client.get("/api/experiments/checkout/factorial", headers=admin), 422, "validation_error"
    )
    assert "not factorial" in error["message"]
    base = "/api/experiments/interacting_experiments/interactions"
    _error(client.get(base, headers=admin), 422, "validation_error")  # `with` is required
    _error(client.get(base, params={"with": "nope"}, headers=admin), 404, "not_found")
    _error(
        client.get(base, params={"with": "interacting_experiments"}, headers=admin),
        422,
        "validation_error",
    )
    error = _error(
        client.get(base, params={"with": "checkout"}, headers=admin), 422, "validation_error"
    )
    assert "share no analysed units" in error["message"]
    assert client.get("/api/experiments/factorial_2x2/factorial").status_code == 401
    schema = client.get("/openapi.json").json()
    for path in ("/api/experiments/{key}/factorial", "/api/experiments/{key}/interactions"):
        assert {"404", "422"} <= set(schema["paths"][path]["get"]["responses"])


def test_an_incomplete_factorial_design_is_refused_on_create(
    client: TestClient, admin: dict[str, str]
) -> None:
    def variant(key: str, layout: str, price: str, control: bool = False) -> dict[str, Any]:
        factors = {"layout": layout, "price": price}
        return {"key": key, "weight": 1 / 3, "is_control": control, "payload": {"factors": factors}}

    body = {
        "key": "half-factorial",
        "variants": [
            variant("control", "old", "standard", control=True),
            variant("layout", "new", "standard"),
            variant("price", "old", "low"),
        ],
    }
    error = _error(
        client.post("/api/experiments", json=body, headers=admin), 422, "validation_error"
    )
    assert "2 factors need 4 variants, not 3" in str(error)

"""Ad-hoc breakdowns (``GET …/results?breakdown=country,device``, ``splitlab analyze
--breakdown``): computed on demand from the warehouse with the attributes as segments (two add
their crossed cells), labelled exploratory, cached while the data is unchanged and never
stored as the experiment's snapshot — cell rows checked against scipy on the per-unit values,
on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats as scipy_stats

from splitlab.config import Settings
from splitlab.domain import MetricDefinition
from splitlab.services import Services
from tests.analysis.builders import START, Dataset, backend_settings, generate, per_unit
from tests.api.helpers import create_running

REVENUE = {"key": "revenue", "kind": "sum", "event": "purchase"}
DEVICES = ("ios", "android", "web")


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The warehouse follows the app store's backend (SQLite + DuckDB, or PostgreSQL)."""
    return backend_settings(request, tmp_path)


@pytest.fixture
def running(
    client: TestClient, services: Services, admin: dict[str, str], reviewer: dict[str, str]
) -> Dataset:
    assert client.post("/api/metrics", json=REVENUE, headers=admin).status_code == 201
    create_running(
        client,
        admin,
        reviewer,
        "checkout",
        variants=[
            {"key": "control", "weight": 0.5, "is_control": True},
            {"key": "b", "weight": 0.5},
        ],
        metrics={"primary": "conversion", "secondary": ["revenue"]},
    )
    dataset = generate(seed=31, n_units=600, excluded_share=0.0)
    for k, unit in enumerate(dataset.units):
        unit.attributes = {**unit.attributes, "device": DEVICES[k % 3]}
    dataset.write(services.warehouse, "checkout")
    return dataset


def _get(client: TestClient, headers: dict[str, str], **params: Any) -> Any:
    return client.get("/api/experiments/checkout/results", params=params, headers=headers)


def test_crossed_breakdown_matches_welch_per_cell(
    client: TestClient, admin: dict[str, str], running: Dataset
) -> None:
    response = _get(client, admin, breakdown="country,device")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["breakdown"]["exploratory"] is True
    assert data["breakdown"]["dimensions"] == ["country", "device"]
    assert "not pre-registered" in data["breakdown"]["note"]
    assert data["settings"]["segments"] == ["country", "device"]
    assert data["settings"]["crossed"] == [["country", "device"]]
    values = per_unit(running, MetricDefinition.model_validate(REVENUE))
    rows = [
        r
        for r in data["results"]
        if r["metric"] == "revenue" and r["variant"] == "b" and r["segment"]
    ]
    crossed = [r for r in rows if r["segment"]["name"] == "country × device"]
    assert crossed and {r["segment"]["name"] for r in rows} >= {"country", "device"}
    checked = 0
    for row in crossed:
        country, device = row["segment"]["value"].split(" × ")
        arms = {
            arm: np.array(
                [
                    values[u.unit_id][0] or 0.0
                    for u in running.included()
                    if u.variant == arm
                    and u.attributes.get("country", "(none)") == country
                    and u.attributes["device"] == device
                ]
            )
            for arm in ("control", "b")
        }
        if min(a.size for a in arms.values()) < 5 or country == "other":
            continue
        welch = scipy_stats.ttest_ind(arms["b"], arms["control"], equal_var=False)
        assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-9), row["segment"]
        assert row["treatment_n"] == arms["b"].size
        checked += 1
    assert checked >= 3
    assert any(h["segment"] == "country × device" for h in data["heterogeneity"])


def test_cached_while_data_unchanged_and_never_stored(
    client: TestClient, services: Services, admin: dict[str, str], running: Dataset
) -> None:
    first = _get(client, admin, breakdown="device").json()
    assert first["cached"] is False
    again = _get(client, admin, breakdown="device").json()
    assert again["cached"] is True and again["results"] == first["results"]
    # not the experiment's snapshot: results without breakdown still need an analysis
    assert _get(client, admin).status_code == 404
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
    assert _get(client, admin, breakdown="device").json()["cached"] is False
    one = _get(client, admin, breakdown="device", segment="device").json()
    assert {r["segment"]["name"] for r in one["results"]} == {"device"}


@pytest.mark.parametrize(
    "value", ["", ",", "a,b,c", "device,device", "bad name", "x" * 300, "a\x00b"]
)
def test_bad_breakdowns_are_422(
    client: TestClient, admin: dict[str, str], running: Dataset, value: str
) -> None:
    response = _get(client, admin, breakdown=value)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"]


def test_unknown_experiment_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(
        "/api/experiments/nope/results", params={"breakdown": "device"}, headers=admin
    )
    assert response.status_code == 404


def test_heterogeneity_of_a_single_cell_is_not_an_error() -> None:
    """A segment whose units all share one value has one cell: no test, a reason, no crash
    (an IndexError before, which failed the whole analysis)."""
    from splitlab import stats

    result = stats.heterogeneity(np.array([[0.3]]), np.array([[0.01]]), axis=1)
    assert result.cells[0] == 1
    assert np.isnan(result.p_value[0]) and np.isnan(result.q[0])
    assert str(result.reason[0])

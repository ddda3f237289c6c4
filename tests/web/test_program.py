"""The program views (``/program/{view}``), their JSON twins, ``GET /api/program/{view}`` and
``splitlab program …`` over a demo organisation: the same numbers on every surface, filters
in the URL (checked, echoed escaped), login and 4xx answers, and velocity per team that adds
up to the fleet view's own counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from splitlab.app import create_app
from splitlab.cli import app as cli
from splitlab.decisions.program import parse_filters
from splitlab.domain import Role, Scope
from splitlab.services import Services
from splitlab.store.users import create_api_key
from splitlab.web.program import velocity_view
from tests.web.demo_helpers import open_demo

SUBSET = (
    "guided-onboarding",  # shipped, won
    "recs-v2",  # shipped
    "rich-product-pages",  # killed despite a win (guardrail)
    "green-buy-button",  # killed, inconclusive
    "edge-config-v2",  # rolled back, platform
    "cheaper-image-cdn",  # shipped, cost optimisation
    "feed-redesign",  # running: not decided
)
VIEWS = ("impact", "tracker", "cost-benefit")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Part of the demo organisation (six decided experiments, one running), on SQLite."""
    home = tmp_path_factory.mktemp("program")
    services = open_demo(home, SUBSET, users=[("vic", Role.VIEWER)], scheduler_seconds=0)
    yield services
    services.close()


@pytest.fixture(scope="module")
def api_key(demo: Services) -> dict[str, str]:
    with demo.sessions.begin() as session:
        key = create_api_key(session=session, username="vic", scope=Scope.READ)
    return {"Authorization": f"Bearer {key}"}


def _same(page: dict[str, Any], api: dict[str, Any]) -> None:
    page, api = dict(page), dict(api)
    page.pop("generated_at"), api.pop("generated_at")
    assert page == api


def test_login_and_auth_are_required(demo: Services) -> None:
    with TestClient(create_app(services=demo)) as anonymous:
        response = anonymous.get("/program/tracker", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert anonymous.get("/api/program/tracker").status_code == 401


@pytest.mark.parametrize("view", VIEWS)
def test_every_surface_gives_the_same_numbers(
    vic: TestClient, api_key: dict[str, str], view: str
) -> None:
    html = vic.get(f"/program/{view}")
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert 'id="program-figures"' in html.text and "/assets/plotly.min.js" in html.text
    twin = vic.get(f"/program/{view}", params={"format": "json"}).json()
    api = vic.get(f"/api/program/{view}", headers=api_key).json()
    _same(twin, api)
    assert twin["decided"] == 6 and twin["view"] == view


def test_impact_page_shows_both_totals(vic: TestClient) -> None:
    data = vic.get("/program/impact", params={"format": "json"}).json()
    shipped = {"guided-onboarding", "recs-v2", "cheaper-image-cdn"}
    assert {c["key"] for c in data["changes"]} == shipped
    assert data["population"] == 6 and data["shrunk"]
    raw, shrunk = data["raw_total"], data["shrunk_total"]
    assert raw["value"] == pytest.approx(sum(c["lift"] for c in data["changes"]), abs=1e-5)
    assert shrunk["ci_low"] < shrunk["value"] < shrunk["ci_high"]
    html = vic.get("/program/impact").text
    pct = f"{shrunk['value'] * 100:+.1f}%"
    assert "Shrunk total (James–Stein)" in html and pct in html
    assert f"{raw['value'] * 100:+.1f}%" in html
    for key in shipped:
        assert f'href="/experiments/{key}"' in html


def test_tracker_page_badges_and_learnings(vic: TestClient) -> None:
    data = vic.get("/program/tracker", params={"format": "json"}).json()
    html = vic.get("/program/tracker").text
    assert html.count("✓ called") == data["matches"]["called"]
    assert html.count("✗ surprise") == data["matches"]["surprise"]
    assert data["calibration"]["n"] == 6  # every decided demo experiment states a chance
    assert f"{data['calibration']['brier']:.3f}" in html
    assert "Uncapped" not in html  # premium-bundles is not decided
    assert "Conversion is up but page load +15% breaches the 5% guardrail." in html
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["rich-product-pages"]["predicted_probability"] == 0.65
    assert rows["rich-product-pages"]["verdict"] == "won"  # the metric won; a guardrail killed it


def test_cost_benefit_page(vic: TestClient) -> None:
    data = vic.get("/program/cost-benefit", params={"format": "json"}).json()
    assert len(data["points"]) == 6 and data["currency"] == "USD" and not data["missing_costs"]
    recs = next(p for p in data["points"] if p["key"] == "recs-v2")
    assert recs["engineering_cost"] == 90_000 and recs["run_cost"] == pytest.approx(900 * 14)
    value = vic.get("/program/cost-benefit", params={"benefit": "value", "format": "json"})
    assert value.json()["points"] == []  # the demo's recommendations state no business value
    html = vic.get("/program/cost-benefit").text
    for label in ("Quick wins", "Strategic bets", "Cheap lessons", "Costly lessons"):
        assert label in html


def test_filters_are_checked_kept_and_escaped(vic: TestClient) -> None:
    web = vic.get("/program/tracker", params={"team": "web", "format": "json"}).json()
    assert {r["team"] for r in web["rows"]} == {"web"} and web["filters"]["team"] == "web"
    html = vic.get("/program/tracker", params={"team": "web", "period": "month"}).text
    assert 'href="/program/impact?team=web&amp;period=month"' in html
    hostile = vic.get("/program/impact", params={"team": '<script>alert(1)</script>"'})
    assert hostile.status_code == 200 and "<script>alert(1)" not in hostile.text
    assert (
        vic.get("/program/impact", params={"team": "nobody", "format": "json"}).json()["changes"]
        == []
    )
    bad = vic.get("/program/tracker", params={"range": "2d", "format": "json"})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["query", "range"]
    assert vic.get("/program/tracker", params={"format": "xml"}).status_code == 422
    assert vic.get("/program/tracker", params={"team": "a\x00"}).status_code == 422
    assert vic.get("/program/nope").status_code == 404
    moved = vic.get("/program", params={"team": "web"}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/program/impact?team=web"


def test_long_tables_are_paged_and_the_twin_keeps_every_row(
    vic: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from splitlab.web import program as page

    monkeypatch.setattr(page, "PER_PAGE", 4)
    first = vic.get("/program/tracker", params={"team": "", "period": "month"}).text
    assert first.count("<tr>") - 1 == 4  # the header row and four experiments
    assert "Rows 1–4 of 6 (page 1 of 2" in first
    assert 'href="/program/tracker?period=month&amp;page=2"' in first
    second = vic.get("/program/tracker", params={"page": "2"}).text
    assert "Rows 5–6 of 6" in second and "← Previous" in second
    beyond = vic.get("/program/tracker", params={"page": "9"}).text
    assert "Rows 5–6 of 6" in beyond  # past the end: the last page
    twin = vic.get("/program/tracker", params={"page": "2", "format": "json"}).json()
    assert len(twin["rows"]) == 6
    assert vic.get("/program/tracker", params={"page": "0"}).status_code == 422


def test_api_documents_and_checks_its_input(vic: TestClient, api_key: dict[str, str]) -> None:
    assert vic.get("/api/program/velocity", headers=api_key).status_code == 422
    wrong = vic.get("/api/program/impact", params={"benefit": "joy"}, headers=api_key)
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "validation_error"
    schema = vic.get("/openapi.json").json()["paths"]["/api/program/{view}"]["get"]
    assert {"401", "403", "422"} <= set(schema["responses"])


def test_velocity_per_team_adds_up_to_the_fleet(vic: TestClient) -> None:
    data = vic.get("/program/velocity", params={"range": "365d", "format": "json"}).json()
    fleet = vic.get("/", params={"status": "all", "range": "all", "format": "json"}).json()
    launched = dict(zip(fleet["velocity"]["months"], fleet["velocity"]["launched"], strict=True))
    months = [m["month"] for m in data["teams"][0]["months"]]
    for i, month in enumerate(months):
        total = sum(t["months"][i]["launched"] for t in data["teams"])
        assert total == launched.get(month, 0), month
    assert {t["team"] for t in data["teams"]} == {"growth", "web", "ml-platform", "platform"}
    html = vic.get("/program/velocity").text
    assert "the 15–40% of experiments that win in mature programs" in html
    figures = json.loads(html.split('id="program-figures">')[1].split("</script>")[0])
    band = figures["win_rate"]["layout"]["shapes"][0]
    assert (band["y0"], band["y1"]) == (0.15, 0.40)


def test_cli_prints_the_views(demo: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = demo.settings
    monkeypatch.setenv("SPLITLAB_HOME", str(settings.home))
    monkeypatch.setenv("SPLITLAB_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("SPLITLAB_SECRET_KEY", "test-secret")
    runner = CliRunner()
    result = runner.invoke(cli, ["program", "tracker", "--json", "--team", "web"])
    assert result.exit_code == 0, result.output
    assert {r["team"] for r in json.loads(result.output)["rows"]} == {"web"}
    text = runner.invoke(cli, ["program", "impact"])
    assert text.exit_code == 0 and "James-Stein" in text.output and "recs-v2" in text.output
    costs = runner.invoke(cli, ["program", "cost-benefit"])
    assert costs.exit_code == 0, costs.output
    assert costs.output.count("cost ") == 6 and "(strategic bets)" in costs.output
    bad = runner.invoke(cli, ["program", "impact", "--range", "2d"])
    assert bad.exit_code == 1 and "range" in bad.output
    # velocity from the CLI is the page's JSON twin, and its text names each team
    page = velocity_view(demo, parse_filters({"range": "365d"}), now=datetime.now(UTC))
    twin = runner.invoke(cli, ["program", "velocity", "--range", "365d", "--json"])
    assert twin.exit_code == 0, twin.output
    assert json.loads(twin.output)["teams"] == page["teams"]
    lines = runner.invoke(cli, ["program", "velocity", "--range", "365d"])
    assert lines.exit_code == 0, lines.output
    assert all(f"{t['team']}: launched" in lines.output for t in page["teams"])
    wrong = runner.invoke(cli, ["program", "velocity", "--range", "2d"])
    assert wrong.exit_code == 1 and "range" in wrong.output

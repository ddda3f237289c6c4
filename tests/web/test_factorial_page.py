"""The interaction plot on a factorial experiment's page: the primary metric's cell means read
from the snapshot (checked against the snapshot's own rows), drawn by factorial.js with the
Plotly served locally; absent on an A/B test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from splitlab.analysis.service import analyze
from splitlab.config import Settings
from splitlab.domain import Role
from splitlab.services import Services
from splitlab.simulate import generate
from splitlab.simulate.run import simulate_into
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade
from splitlab.store.users import create_user
from tests.web.test_experiment_page import logged_in, twin

START = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ada(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    home = tmp_path_factory.mktemp("factorial-page")
    settings = Settings(
        home=home / "home",
        database_url=f"sqlite:///{home / 'app.db'}",
        secret_key="test-secret",
        auth="on",
        ingest_cache_seconds=0,
    )
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    services = Services.open(settings)
    for name in ("factorial_2x2", "global_positive"):
        simulate_into(services, generate(name, units=8_000, start=START))
        analyze(services=services, key=name)
    with services.sessions.begin() as session:
        create_user(session=session, username="ada", password="password-123", role=Role.ADMIN)
    with logged_in(services, "ada") as client:
        yield client, services
    services.close()


def test_factorial_page_draws_the_interaction_plot_from_the_snapshot(
    ada: tuple[TestClient, Services],
) -> None:
    client, services = ada
    data = twin(client, "/experiments/factorial_2x2")
    plot = data["interaction"]
    assert plot["metric"] == "ff-conversion"
    assert (plot["x_factor"], plot["line_factor"]) == ("layout", "price")
    assert plot["x"] == ["old", "new"]
    assert [line["name"] for line in plot["lines"]] == ["price = standard", "price = low"]
    snapshot = analyze(services=services, key="factorial_2x2")
    rows = {r.variant: r for r in snapshot.overall() if r.metric == "ff-conversion"}
    control = rows["layout_new"].control_mean
    assert plot["lines"][0]["y"] == [control, rows["layout_new"].treatment_mean]
    assert plot["lines"][1]["y"] == [
        rows["price_low"].treatment_mean,
        rows["layout_new_price_low"].treatment_mean,
    ]
    html = client.get("/experiments/factorial_2x2").text
    assert 'id="chart-interaction"' in html and 'id="interaction-data"' in html
    assert '<script src="/static/factorial.js" defer></script>' in html
    assert "/api/experiments/factorial_2x2/factorial" in html
    assert client.get("/static/factorial.js").status_code == 200


def test_an_ab_test_has_no_interaction_plot(ada: tuple[TestClient, Services]) -> None:
    client, _ = ada
    assert twin(client, "/experiments/global_positive")["interaction"] is None
    assert "chart-interaction" not in client.get("/experiments/global_positive").text

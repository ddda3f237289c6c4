"""The canary monitor (``/canary/{key}``): control against the canary with always-valid
bounds (checked against the confidence-sequence formula computed here), the live stream
(server-sent events: a state at once, a ping when nothing changed, a new state when
something did), the rollback button (refused without CSRF or for a viewer, nothing changed;
an editor's rollback is a recorded decision), and the ``canary_regression`` demo rolled back
automatically by the scheduler's guardrail check, seen through the page's JSON and stream."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from scipy import stats as sps

from splitlab.analysis.service import latest
from splitlab.decisions.actions import list_decisions
from splitlab.decisions.scheduler import Scheduler
from splitlab.services import Services
from splitlab.store.audit import list_audit
from splitlab.store.experiments import get_experiment
from splitlab.web import canary as canary_web
from tests.web.demo_helpers import csrf_of, logged_in
from tests.web.ml_helpers import open_demo

KEY = "payments-4-2-canary"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = open_demo(tmp_path_factory.mktemp("canary"), (KEY,))
    yield services
    services.close()


def status(services: Services, key: str = KEY) -> str:
    with services.sessions() as session:
        return get_experiment(session=session, key=key).status


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def test_rows_with_always_valid_bounds(demo: Services, vic: TestClient) -> None:
    data = vic.get(f"/canary/{KEY}", params={"format": "json"}).json()
    assert data["status"] == "running" and data["control"] == "stable"
    rows = {r["metric"]: r for r in data["rows"]}
    assert list(rows) == ["cr-error-rate", "cr-latency-ms"]  # errors first, then latency
    errors = rows["cr-error-rate"]
    assert errors["verdict"] == "worse" and errors["higher_is_better"] is False
    snap = latest(services=demo, key=KEY)
    row = snap.result("cr-error-rate", "canary")
    assert errors["rel_effect"] == row.rel_effect
    assert errors["ci"] == [row.rel_ci_low, row.rel_ci_high]
    # the confidence sequence, computed here: half-width × k / z at N = n_c + n_t
    alpha, tuning = 0.05, data["snapshot"]["tuning"]
    assert row.control_n is not None and row.treatment_n is not None
    n = row.control_n + row.treatment_n
    log_term = -2 * math.log(alpha)
    rho2 = (log_term + math.log(log_term + 1)) / tuning
    a = n * rho2
    k = math.sqrt(2 * (a + 1) / a * math.log(math.sqrt(a + 1) / alpha))
    z = sps.norm.ppf(1 - alpha / 2)
    assert row.rel_effect is not None and row.rel_ci_low is not None
    assert row.rel_ci_high is not None
    low = row.rel_effect - (row.rel_effect - row.rel_ci_low) * k / z
    high = row.rel_effect + (row.rel_ci_high - row.rel_effect) * k / z
    assert errors["always_valid_ci"] == [
        pytest.approx(low, rel=1e-12),
        pytest.approx(high, rel=1e-12),
    ]
    assert errors["always_valid_ci"][0] > 0  # worse even at every look
    assert rows["cr-latency-ms"]["verdict"] == "no evidence of a change"
    assert data["rollback_recommended"] and data["recommendation"]["code"] == "ROLLBACK"
    assert data["automatic"]["enabled"] is False  # this server has no scheduler


def test_documented_delay(demo: Services) -> None:
    from splitlab.decisions.canary import rollback_delay

    on = demo.settings.model_copy(
        update={"scheduler_seconds": 30.0, "analysis_refresh_seconds": 900.0}
    )

    class Fake:
        settings = on

    delay = rollback_delay(Fake())  # type: ignore[arg-type]
    assert delay["max_delay_seconds"] == 930.0
    assert "within 930 s" in delay["text"]


def test_page_renders_bounds_button_and_stream(ada: TestClient, vic: TestClient) -> None:
    html = ada.get(f"/canary/{KEY}").text
    assert 'data-events="/canary/payments-4-2-canary/events"' in html
    assert 'id="rollback-button"' in html and 'name="csrf_token"' in html
    assert "always-valid" in html and "✗ worse" in html
    assert 'href="/experiments/payments-4-2-canary/variants/canary"' in html
    assert 'id="rollback-button"' not in vic.get(f"/canary/{KEY}").text  # viewers: no button


def test_stream_sends_state_then_pings(vic: TestClient) -> None:
    response = vic.get(f"/canary/{KEY}/events", params={"limit": 3, "interval": 0.05})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    got = events(response.text)
    assert [name for name, _ in got] == ["state", "ping", "ping"]
    state = got[0][1]
    assert state["state"]["experiment"] == KEY and "<table" in state["html"]
    assert got[1][1]["version"] == state["state"]["version"]


def test_stream_sends_a_new_state_when_something_changes(
    vic: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = canary_web.canary_state
    calls = {"n": 0}

    def changing(*, services: Services, key: str) -> dict[str, Any]:
        state = real(services=services, key=key)
        calls["n"] += 1
        return state | {"version": "v1" if calls["n"] <= 3 else "v2"}  # 1st: the 404 check

    monkeypatch.setattr(canary_web, "canary_state", changing)
    response = vic.get(f"/canary/{KEY}/events", params={"limit": 4, "interval": 0.05})
    assert [name for name, _ in events(response.text)] == ["state", "ping", "state", "ping"]


@pytest.mark.parametrize("params", [{"interval": "0"}, {"interval": "61"}, {"limit": "0"}])
def test_stream_bad_parameters(vic: TestClient, params: dict[str, str]) -> None:
    assert vic.get(f"/canary/{KEY}/events", params=params).status_code == 422


def test_unknown_canary_is_404(vic: TestClient) -> None:
    assert vic.get("/canary/nope").status_code == 404
    assert vic.get("/canary/nope/events").status_code == 404


def test_rollback_refused_without_csrf_or_for_a_viewer(
    demo: Services, ada: TestClient, vic: TestClient
) -> None:
    url = f"/canary/{KEY}/rollback"
    forged = ada.post(url, data={"reason": "x", "csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    missing = ada.post(url, data={"reason": "x"}, follow_redirects=False)
    assert missing.status_code == 403
    token = csrf_of(vic.get(f"/canary/{KEY}").text)  # the viewer's own valid token
    viewer = vic.post(url, data={"reason": "x", "csrf_token": token}, follow_redirects=False)
    assert viewer.status_code == 403
    token = csrf_of(ada.get(f"/canary/{KEY}").text)
    empty = ada.post(url, data={"reason": "  ", "csrf_token": token}, follow_redirects=False)
    assert empty.status_code == 422
    assert status(demo) == "running" and list_decisions(services=demo, key=KEY) == []


def test_an_editor_rolls_back_through_a_decision(demo: Services, ada: TestClient) -> None:
    token = csrf_of(ada.get(f"/canary/{KEY}").text)
    response = ada.post(
        f"/canary/{KEY}/rollback",
        data={"reason": "error rate x3", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/canary/{KEY}?done=rolled_back"
    assert status(demo) == "rolled_back"
    decision = list_decisions(services=demo, key=KEY)[0]
    assert decision["action"] == "rollback" and decision["rationale"] == "error rate x3"
    again = ada.post(
        f"/canary/{KEY}/rollback", data={"reason": "again", "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert again.status_code == 409  # nothing left to roll back


@pytest.fixture
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = open_demo(tmp_path_factory.mktemp("canary-auto"), (KEY,))
    yield services
    services.close()


def test_canary_regression_is_rolled_back_automatically(fresh: Services) -> None:
    """End to end: the scheduler's guardrail check (the decision engine's ROLLBACK) rolls the
    canary back at its next tick; the monitor's JSON and its stream show it."""
    with logged_in(fresh, "vic") as client:
        before = client.get(f"/canary/{KEY}", params={"format": "json"}).json()
        assert before["status"] == "running" and before["rollback_recommended"]
        scheduler = Scheduler(fresh, owner="canary-test")
        report = scheduler.tick()
        scheduler.release()
        assert KEY in report.auto_stopped, report.errors
        after = client.get(f"/canary/{KEY}", params={"format": "json"}).json()
        assert after["status"] == "rolled_back" and after["rolled_back"]
        assert not after["can_roll_back"] and after["version"] != before["version"]
        auto = [a for a in after["audit"] if a["action"] == "auto_stop"]
        assert auto and auto[0]["actor"] == "scheduler"
        assert auto[0]["reason"].startswith("guardrail breach (ROLLBACK)")
        name, first = events(client.get(f"/canary/{KEY}/events", params={"limit": 1}).text)[0]
        assert name == "state" and "Rolled back." in first["html"]
        assert "Automatically by scheduler" in first["html"]
    with fresh.sessions() as session:
        entries = list_audit(session=session, entity="experiment", entity_key=KEY)
    assert next(e.to_status for e in entries if e.action == "transition") == "rolled_back"

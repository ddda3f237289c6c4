"""The experiment page (``/experiments/{key}``), its variant pages and its actions: content
read from the snapshot, one shared CI axis, colour meaning good or bad (inverted for
lower-is-better metrics), the JSON twin, actions only for roles that may use them, and
forged posts refused without changing anything (on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ibis
import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from scipy import stats as sps
from scipy.optimize import brentq

from splitlab.analysis import views
from splitlab.analysis.breakdown import breakdown
from splitlab.analysis.service import analyze, latest
from splitlab.analysis.snapshot import CheckName, HealthCheck, Severity
from splitlab.app import create_app
from splitlab.decisions.scheduler import Scheduler
from splitlab.domain import Role
from splitlab.services import Services
from splitlab.simulate.generator import generate
from splitlab.simulate.run import simulate_into
from splitlab.simulate.scenario import load_scenario
from splitlab.store.audit import list_audit
from splitlab.store.experiments import get_experiment, list_notes, spec_from_row
from splitlab.store.users import create_user
from splitlab.warehouse import queries
from splitlab.web import experiment_view as ev
from tests.web.demo_helpers import csrf_of, logged_in, open_demo, seed

SUBSET = (
    "checkout-redesign-abc",  # running, A/B/C, segments, planned sample
    "edge-config-v2",  # rolled back: latency guardrail (lower is better) rose
    "search-autocomplete",  # in review
)
USERS = (("ada", Role.ADMIN), ("vic", Role.VIEWER), ("eve", Role.EDITOR), ("rita", Role.REVIEWER))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Four demo experiments with data and snapshots, on SQLite (read-only tests)."""
    services = open_demo(tmp_path_factory.mktemp("experiment"), SUBSET, users=USERS)
    yield services
    services.close()


@pytest.fixture(scope="module")
def ada(demo: Services) -> Iterator[TestClient]:
    with logged_in(demo, "ada") as client:
        yield client


@pytest.fixture(scope="module")
def vic(demo: Services) -> Iterator[TestClient]:
    with logged_in(demo, "vic") as client:
        yield client


def twin(client: TestClient, path: str, **params: str) -> dict[str, Any]:
    response = client.get(path, params=params | {"format": "json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def rows_of(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["metric"], r["variant"]): r | {"section": s["role"]}
        for s in data["sections"]
        for r in s["rows"]
    }


# ---------------------------------------------------------------- reading the page


def test_anonymous_visitors_are_sent_to_log_in(demo: Services) -> None:
    with TestClient(create_app(services=demo)) as client:
        for path in ("/experiments/checkout-redesign-abc", "/experiments/x/variants/control"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"] == "/login"


def test_page_shows_header_results_on_one_axis_and_the_settings(
    ada: TestClient, demo: Services
) -> None:
    response = ada.get("/experiments/checkout-redesign-abc")
    assert response.status_code == 200
    html = response.text
    assert "Checkout redesign A/B/C" in html and "status-running" in html
    for text in ("frequentist", "α = 0.05 (95% CI)", "correction: holm", "CUPED off"):
        assert text in html
    assert '<link rel="stylesheet" href="/static/experiment.css">' in html
    assert "/assets/plotly.min.js" in html
    snapshot = latest(services=demo, key="checkout-redesign-abc")
    overall = list(snapshot.overall())
    # one axis: tick labels once, in the header; a zero line and a bar in every row
    assert html.count('class="axis"') == 1
    assert html.count('class="zero"') == len(overall) == 8
    assert html.count('<span class="bar') == len(overall)
    assert "Primary" in html and "Secondary" in html
    # means with their n beneath, p-values adjusted, confidence level stated
    first = snapshot.result("mv-conversion", "treatment_a")
    assert f"n = {first.control_n:,.0f}" in html
    assert "95% intervals" in html and "adjusted by <strong>holm</strong>" in html
    # a recommendation banner, one
    assert html.count('class="reco ') == 1


def test_json_twin_carries_the_snapshot_numbers_and_sections(
    ada: TestClient, demo: Services
) -> None:
    data = twin(ada, "/experiments/checkout-redesign-abc")
    snapshot = latest(services=demo, key="checkout-redesign-abc")
    rows = rows_of(data)
    assert set(rows) == {(r.metric, r.variant) for r in snapshot.overall()}
    conversion = rows[("mv-conversion", "treatment_a")]
    assert conversion["section"] == "primary"
    assert (
        conversion["raw"]["rel_effect"]
        == snapshot.result("mv-conversion", "treatment_a").rel_effect
    )
    assert {s["role"] for s in data["sections"]} == {"primary", "secondary"}
    assert data["settings"]["correction"] == "holm" and data["settings"]["confidence"] == "95%"
    assert data["recommendation"]["experiment"] == "checkout-redesign-abc"
    assert data["snapshot"]["id"] == snapshot.snapshot_id
    # the shared axis covers every interval with padding, zero included
    lows = [r.rel_ci_low for r in snapshot.overall() if r.rel_ci_low is not None]
    highs = [r.rel_ci_high for r in snapshot.overall() if r.rel_ci_high is not None]
    axis = data["axis"]
    assert axis["low"] < min(0.0, *lows) and axis["high"] > max(0.0, *highs)
    span = max(0.0, *highs) - min(0.0, *lows)
    assert axis["high"] - axis["low"] == pytest.approx(span * 1.2)
    # time series and exposures come from the cumulative daily points
    series = data["timeseries"]["series"]
    assert {(s["metric"], s["variant"]) for s in series} >= {("mv-conversion", "treatment_a")}
    assert len(series[0]["days"]) == len(snapshot.days)
    per_day = data["exposures"]["control"]
    assert sum(p["units"] for p in per_day) == snapshot.units[0].n
    assert "bar" not in conversion  # layout details stay out of the twin


def test_significance_colour_means_good_or_bad_inverted_for_lower_is_better(
    ada: TestClient, demo: Services
) -> None:
    snapshot = latest(services=demo, key="edge-config-v2")
    latency = snapshot.result("lr-latency-ms", "edge_v2")
    assert latency.rel_effect is not None and latency.rel_effect > 0.2  # latency rose
    data = twin(ada, "/experiments/edge-config-v2")
    rows = rows_of(data)
    bad = rows[("lr-latency-ms", "edge_v2")]
    assert bad["section"] == "guardrail" and bad["higher_is_better"] is False
    assert bad["significant"] is True and bad["tone"] == "bad"
    assert bad["direction"] == "worse" and bad["words"] == "significant"
    ctr = rows[("lr-ctr", "edge_v2")]
    # higher is better: the colour follows the sign, not inverted
    assert ctr["tone"] == ("good" if ctr["raw"]["rel_effect"] > 0 else "bad")
    html = ada.get("/experiments/edge-config-v2").text
    latency_row = re.search(r'<tr class="result ([^"]*)"[^>]*data-metric="lr-latency-ms"', html)
    assert latency_row and "tone-bad" in latency_row.group(1) and "sig" in latency_row.group(1)
    assert "sig-bad" in html and "lower is better" in html and "Guardrails" in html


def test_insignificant_results_are_faded_and_say_so(ada: TestClient) -> None:
    rows = rows_of(twin(ada, "/experiments/checkout-redesign-abc"))
    plain = rows[("mv-conversion", "treatment_b")]
    assert plain["significant"] is False and plain["words"] == "not significant"
    assert plain["direction"].startswith("leans ")
    html = ada.get("/experiments/checkout-redesign-abc").text
    row = re.search(r'<tr class="result ([^"]*)"[^>]*data-metric="mv-conversion" '
                    r'data-variant="treatment_b"', html)  # fmt: skip
    assert row and "insig" in row.group(1)


def test_health_checklist_lists_failures_first() -> None:
    checks = [
        HealthCheck(check=CheckName.SRM_DAILY, severity=Severity.INFO, value=0.4, message="ok"),
        HealthCheck(check=CheckName.NOVELTY, severity=Severity.WARNING, value=0.2, message="w",
                    metric="m", variant="b"),
        HealthCheck(check=CheckName.SRM, severity=Severity.CRITICAL, value=2e-6,
                    message="control has 3.1% fewer units than expected", variant="control"),
        HealthCheck(check=CheckName.NO_DATA, severity=Severity.INFO, value=None, message="ok"),
        HealthCheck(check=CheckName.UNDERPOWERED, severity=Severity.INFO, value=0.4,
                    message="Power so far is 40%", pending=True),
    ]  # fmt: skip
    view = ev.health_view(checks)
    assert [c["check"] for c in view["checks"]] == [
        "srm", "novelty", "underpowered", "srm_daily", "no_data",
    ]  # fmt: skip
    # an info finding that cannot pass yet is not counted (or drawn) as a pass
    assert [c["passed"] for c in view["checks"]] == [False, False, False, True, True]
    assert [c["pending"] for c in view["checks"]] == [False, False, True, False, False]
    assert (view["critical"], view["warning"], view["pending"], view["passed"]) == (1, 1, 1, 2)
    assert view["state"] == "critical"


def test_health_section_has_the_toggle_and_chips(ada: TestClient, demo: Services) -> None:
    snapshot = latest(services=demo, key="checkout-redesign-abc")
    data = twin(ada, "/experiments/checkout-redesign-abc")
    order = {"critical": 0, "warning": 1, "info": 2}
    checks = data["health"]["checks"]
    assert len(checks) == len(snapshot.health)
    assert [order[c["severity"]] for c in checks] == sorted(order[c["severity"]] for c in checks)
    html = ada.get("/experiments/checkout-redesign-abc").text
    assert 'id="hide-passed"' in html and html.count('class="check sev-') == len(checks)
    for check in checks:
        if not check["passed"]:
            assert f'href="#{check["id"]}"' in html  # a chip jumps to each problem


def test_segments_heatmap_and_drill_down(ada: TestClient, demo: Services) -> None:
    data = twin(ada, "/experiments/checkout-redesign-abc")
    snapshot = latest(services=demo, key="checkout-redesign-abc")
    heat = data["heatmap"]
    assert heat["rows"], "the scenario has pre-registered segments"
    first = heat["rows"][0]
    cell = first["cells"][0]
    column = heat["columns"][0]
    row = next(
        r
        for r in snapshot.results
        if r.segment is not None
        and (r.segment.name, r.segment.value) == (first["segment"], first["value"])
        and (r.metric, r.variant) == (column["metric"], column["variant"])
    )
    assert cell["z"] == pytest.approx(row.statistic, abs=0.005)  # effect ÷ SE, sign kept
    drilled = twin(
        ada, "/experiments/checkout-redesign-abc", segment=first["segment"], value=first["value"]
    )
    segments = {tuple(r["segment"].values()) for s in drilled["sections"] for r in s["rows"]}
    assert segments == {(first["segment"], first["value"])}
    missing = ada.get("/experiments/checkout-redesign-abc", params={"segment": "nope"})
    assert missing.status_code == 404


def test_power_curve_and_progress(ada: TestClient, demo: Services) -> None:
    snapshot = latest(services=demo, key="checkout-redesign-abc")
    curves = views.power_curves(snapshot)
    assert [c.variant for c in curves] == ["treatment_a", "treatment_b"]
    curve = curves[0]
    row = snapshot.result("mv-conversion", "treatment_a")
    assert row.control_n and row.n_required and row.mde
    assert curve.progress == pytest.approx(row.control_n / row.n_required)
    assert curve.days_remaining == row.days_remaining
    # power(δ) = Φ(δ/SE − z) + Φ(−δ/SE − z), SE = mde_now / s*, s* solving power(s*) = 0.8
    z = sps.norm.ppf(0.975)
    s_star = brentq(lambda s: sps.norm.cdf(s - z) + sps.norm.cdf(-s - z) - 0.8, 0.0, 10.0)
    assert s_star == pytest.approx(2.8016, abs=1e-4)
    se = row.mde / s_star
    for mde, power in zip(curve.mdes, curve.power_now, strict=True):
        expected = sps.norm.cdf(mde / se - z) + sps.norm.cdf(-mde / se - z)
        assert power == pytest.approx(expected, abs=2e-6)
    assert curve.power_now[0] == pytest.approx(0.05, abs=1e-6)  # no effect: α
    assert curve.power_planned is not None and curve.power_planned[-1] > curve.power_now[-1]
    data = twin(ada, "/experiments/checkout-redesign-abc")
    assert data["power"][0]["power_now"] == curve.power_now


def test_running_page_refreshes_its_results_fragment(ada: TestClient) -> None:
    html = ada.get("/experiments/checkout-redesign-abc").text
    assert 'data-refresh="30"' in html and "/static/experiment.js" in html
    fragment = ada.get("/experiments/checkout-redesign-abc", params={"fragment": "results"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith("{#") is False
    assert '<div class="results-block"' in fragment.text and "<html" not in fragment.text
    stopped = ada.get("/experiments/edge-config-v2").text
    assert "data-refresh" not in stopped
    nothing = ada.get("/experiments/search-autocomplete", params={"fragment": "results"})
    assert nothing.status_code == 404


def test_experiment_without_data_says_so(ada: TestClient) -> None:
    response = ada.get("/experiments/search-autocomplete")
    assert response.status_code == 200
    assert "No analysis yet" in response.text
    assert twin(ada, "/experiments/search-autocomplete")["snapshot"] is None
    assert ada.get("/experiments/no-such-thing").status_code == 404


# ---------------------------------------------------------------- the variant page


def test_variant_page_bins_per_unit_values_in_the_warehouse(
    ada: TestClient, demo: Services
) -> None:
    data = twin(ada, "/experiments/checkout-redesign-abc/variants/treatment_a")
    snapshot = latest(services=demo, key="checkout-redesign-abc")
    units = {u.variant: u.n for u in snapshot.units}
    histograms = {h["metric"]: h for h in data["histograms"]}
    conversion = histograms["mv-conversion"]
    assert conversion["edges"] == [-0.5, 0.5, 1.5]  # one bin per value of a 0/1 metric
    for variant in ("control", "treatment_a"):
        counts = conversion["counts"][variant]
        assert sum(counts) == units[variant] == conversion["n"][variant]
        # the share in the "1" bin is the arm's conversion rate
        mean = snapshot.result("mv-conversion", "treatment_a")
        expected = mean.control_mean if variant == "control" else mean.treatment_mean
        assert counts[1] / sum(counts) == pytest.approx(expected, rel=1e-12)
    revenue = histograms["mv-revenue"]
    assert (
        len(revenue["edges"]) == 31
        and sum(revenue["counts"]["treatment_a"]) == units["treatment_a"]
    )
    balance = {b["variant"]: b for b in data["balance"]}
    assert balance["treatment_a"]["n"] == units["treatment_a"]
    assert sum(b["share"] for b in balance.values()) == pytest.approx(1.0)
    assert data["exposures"]["treatment_a"][0]["units"] > 0
    html = ada.get("/experiments/checkout-redesign-abc/variants/treatment_a").text
    assert "Assignment balance" in html and 'id="hist-0"' in html
    assert ada.get("/experiments/checkout-redesign-abc/variants/nope").status_code == 404
    bad_bins = ada.get("/experiments/checkout-redesign-abc/variants/control", params={"bins": 0})
    assert bad_bins.status_code == 422 or bad_bins.status_code == 400


def test_variant_page_shows_the_findings_about_it(ada: TestClient, demo: Services) -> None:
    snapshot = latest(services=demo, key="checkout-redesign-abc")
    data = twin(ada, "/experiments/checkout-redesign-abc/variants/treatment_b")
    expected = [
        c.to_json()
        for c in snapshot.health
        if c.severity is not Severity.INFO and c.variant in (None, "treatment_b")
    ]
    assert data["findings"] == expected


def test_value_histogram_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    values = rng.gamma(2.0, 10.0, size=5000)
    variants = rng.integers(0, 2, size=5000)
    con = ibis.duckdb.connect()
    table = ibis.memtable(pa.table({"variant": variants, "y0": values}))
    low, high = 0.0, float(np.quantile(values, 0.9))
    got = con.to_pyarrow(queries.value_histogram(table, "y0", low=low, high=high, bins=12))
    counts = np.zeros((2, 12), dtype=int)
    beyond = np.zeros(2, dtype=int)
    for row in got.to_pylist():
        counts[row["variant"], row["bin"]] += row["units"]
        beyond[row["variant"]] += row["beyond"]
    for v in (0, 1):
        mine = values[variants == v]
        expected, _ = np.histogram(np.minimum(mine, high), bins=12, range=(low, high))
        assert counts[v].tolist() == expected.tolist()
        assert beyond[v] == int((mine > high).sum())
    summary = con.to_pyarrow(queries.value_range(table, "y0")).to_pylist()[0]
    assert summary["n"] == 5000 and summary["high"] == pytest.approx(values.max())
    assert summary["upper"] == pytest.approx(np.quantile(values, 0.99), rel=1e-9)


# ---------------------------------------------------------------- actions, roles and CSRF


def test_a_viewer_sees_no_actions(vic: TestClient, ada: TestClient) -> None:
    html = vic.get("/experiments/checkout-redesign-abc").text
    assert "<dialog" not in html and "data-dialog" not in html
    assert twin(vic, "/experiments/checkout-redesign-abc")["actions"] == []
    admin = twin(ada, "/experiments/checkout-redesign-abc")["actions"]
    assert {"stop", "note", "ship", "kill", "rollback", "extend", "refresh"} <= {
        a["name"] for a in admin
    }
    assert "approve" not in {a["name"] for a in admin}  # not in review


def test_review_actions_only_for_reviewers(demo: Services) -> None:
    with logged_in(demo, "eve") as editor, logged_in(demo, "rita") as reviewer:
        for_editor = {
            a["name"] for a in twin(editor, "/experiments/search-autocomplete")["actions"]
        }
        for_reviewer = {
            a["name"] for a in twin(reviewer, "/experiments/search-autocomplete")["actions"]
        }
    assert "approve" not in for_editor and "start" in for_editor
    assert {"approve", "request_changes"} <= for_reviewer


@pytest.fixture
def running(services: Services) -> Services:
    """One running demo experiment (with data) and the four users, on each backend."""
    return seed(services, ["feed-redesign"], USERS)


def _trail(services: Services, key: str) -> tuple[int, int, str]:
    with services.sessions() as session:
        audit = len(list_audit(session=session, entity="experiment", entity_key=key))
        notes = len(list_notes(session=session, key=key))
        status = get_experiment(session=session, key=key).status
    return audit, notes, status


def test_forged_posts_are_refused_and_change_nothing(running: Services) -> None:
    key = "feed-redesign"
    with logged_in(running, "ada") as ada, logged_in(running, "vic") as vic:
        page = ada.get(f"/experiments/{key}")
        assert page.status_code == 200, page.text
        token = csrf_of(page.text)
        before = _trail(running, key)  # after the first view, which records a recommendation
        # no token, a wrong token, another session's token
        for data in ({"reason": "x"}, {"reason": "x", "csrf_token": "forged"}):
            response = ada.post(f"/experiments/{key}/actions/stop", data=data)
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"]
        viewer_token = csrf_of(vic.get(f"/experiments/{key}").text)
        assert viewer_token != token
        stolen = ada.post(
            f"/experiments/{key}/actions/note", data={"reason": "x", "csrf_token": viewer_token}
        )
        assert stolen.status_code == 403
        # a viewer with their own valid token is still refused
        for action in ("note", "stop", "ship", "refresh"):
            response = vic.post(
                f"/experiments/{key}/actions/{action}",
                data={"reason": "forged", "csrf_token": viewer_token},
            )
            assert response.status_code == 403, (action, response.text)
        assert _trail(running, key) == before
        # a reason is required for a note; an unknown action is 404; none change anything
        empty = ada.post(f"/experiments/{key}/actions/note", data={"csrf_token": token})
        assert empty.status_code == 422
        unknown = ada.post(f"/experiments/{key}/actions/launch", data={"csrf_token": token})
        assert unknown.status_code == 404
        assert _trail(running, key) == before


def test_actions_with_a_valid_token_do_what_they_say(running: Services) -> None:
    key = "feed-redesign"
    with logged_in(running, "ada") as ada:
        token = csrf_of(ada.get(f"/experiments/{key}").text)
        audit, notes, status = _trail(running, key)
        response = ada.post(
            f"/experiments/{key}/actions/note",
            data={"reason": "Looked at day 9: novelty fading.", "csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/experiments/{key}?done=note"
        assert _trail(running, key) == (audit + 1, notes + 1, "running")
        page = ada.get(f"/experiments/{key}?done=note").text
        assert "Looked at day 9: novelty fading." in page and "Done: note" in page
        # starting again is not offered while running: refused, nothing changes
        again = ada.post(f"/experiments/{key}/actions/start", data={"csrf_token": token})
        assert again.status_code == 422
        stop = ada.post(
            f"/experiments/{key}/actions/stop",
            data={"reason": "enough data", "csrf_token": token},
            follow_redirects=False,
        )
        assert stop.status_code == 303
        assert _trail(running, key)[2] == "stopped"
        assert status == "running"


def test_variant_page_on_each_backend(running: Services) -> None:
    key = "feed-redesign"
    snapshot = latest(services=running, key=key)
    units = {u.variant: u.n for u in snapshot.units}
    with logged_in(running, "vic") as vic:
        data = twin(vic, f"/experiments/{key}/variants/treatment")
        html = vic.get(f"/experiments/{key}/variants/treatment").text
    (clicks,) = data["histograms"]
    assert clicks["kind"] == "count" and clicks["edges"][0] == -0.5  # one bin per count
    for variant in ("control", "treatment"):
        assert sum(clicks["counts"][variant]) == units[variant]
    # the mean recovered from the bins (values past the last edge counted at their own
    # value is not possible, so compare only when nothing is beyond it)
    if not any(clicks["beyond"].values()):
        centres = [(a + b) / 2 for a, b in zip(clicks["edges"], clicks["edges"][1:], strict=False)]
        mean = (
            sum(c * k for c, k in zip(centres, clicks["counts"]["treatment"], strict=True))
            / units["treatment"]
        )
        assert mean == pytest.approx(snapshot.result("nv-clicks", "treatment").treatment_mean)
    assert "Units over time" in html and "<dialog" not in html


def test_review_then_start_from_the_page(services: Services) -> None:
    """A reviewer approves through the page, an editor starts it; a page with no data yet
    still renders (every comparison says why it has no numbers)."""
    key = "search-autocomplete"
    seed(services, [key], USERS)
    with logged_in(services, "rita") as rita, logged_in(services, "eve") as eve:
        token = csrf_of(rita.get(f"/experiments/{key}").text)
        approve = rita.post(
            f"/experiments/{key}/actions/approve",
            data={"csrf_token": token, "reason": "looks right"},
            follow_redirects=False,
        )
        assert approve.status_code == 303, approve.text
        # the editor may not approve, even with a valid token
        editor_token = csrf_of(eve.get(f"/experiments/{key}").text)
        refused = eve.post(f"/experiments/{key}/actions/approve", data={"csrf_token": editor_token})
        assert refused.status_code == 403
        start = eve.post(
            f"/experiments/{key}/actions/start",
            data={"csrf_token": editor_token},
            follow_redirects=False,
        )
        assert start.status_code == 303, start.text
        assert _trail(services, key)[2] == "running"
        page = eve.get(f"/experiments/{key}")
        assert page.status_code == 200 and 'class="results"' in page.text
        data = twin(eve, f"/experiments/{key}")
        assert all(r["raw"]["reason"] for s in data["sections"] for r in s["rows"])
        assert all(r["words"].startswith("no test") for s in data["sections"] for r in s["rows"])


@pytest.mark.parametrize("engine", ["bayesian", "sequential"])
def test_other_engines_read_in_their_own_terms(tmp_path: Path, engine: str) -> None:
    """Bayesian results show the chance to win (clear at ≥ 95% or ≤ 5%); sequential ones say
    their intervals are always valid — the same page, in each engine's words."""
    scenario = load_scenario("global_positive")
    plan = dict(scenario.experiment.get("plan", {})) | {"engine": engine}
    scenario = scenario.model_copy(
        update={"experiment": scenario.experiment | {"plan": plan}, "units": 6000}
    )
    services = open_demo(tmp_path, (), users=USERS)
    try:
        simulate_into(services, generate(scenario, key="engine-check"))
        with logged_in(services, "vic") as vic:
            data = twin(vic, "/experiments/engine-check")
            html = vic.get("/experiments/engine-check").text
    finally:
        services.close()
    assert data["settings"]["engine"] == engine
    rows = [r for s in data["sections"] for r in s["rows"]]
    assert rows
    if engine == "bayesian":
        assert "Chance to win" in html and "clear at ≥ 95% or ≤ 5%" in html
        for row in rows:
            win = row["raw"]["chance_to_win"]
            assert row["significant"] is (win >= 0.95 or win <= 0.05)
            assert row["test"] == f"{win * 100:.1f}%"
    else:
        assert "(always valid)" in html and "sequential yes" in html
        assert "sequential bounds stay valid however often you look" in html
        for row in rows:
            assert row["significant"] is (row["raw"]["p_value_adjusted"] < 0.05)


# ---------------------------------------------------------------- schedule and traffic split


def _schedule_state(services: Services, key: str) -> tuple[str, Any, Any, int]:
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        audit = len(list_audit(session=session, entity="experiment", entity_key=key))
        return row.status, row.start_at, row.end_at, audit


def test_schedule_an_approved_experiment_from_the_page(services: Services) -> None:
    """An editor schedules an approved experiment in review (start_at, optional end_at, UTC);
    bad times are a 422 naming the field and change nothing; the scheduler starts it at
    start_at."""
    key = "search-autocomplete"
    seed(services, [key], USERS)
    with logged_in(services, "rita") as rita, logged_in(services, "eve") as eve:
        # not offered before an approval would pass: scheduling needs one (a 422, unchanged)
        token = csrf_of(eve.get(f"/experiments/{key}").text)
        assert 'data-dialog="dialog-schedule"' in eve.get(f"/experiments/{key}").text
        soon = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
        seeded = _schedule_state(services, key)
        later = soon + timedelta(days=14)
        unapproved = eve.post(
            f"/experiments/{key}/actions/schedule",
            data={"csrf_token": token, "start_at": soon.strftime("%Y-%m-%dT%H:%M")},
        )
        assert unapproved.status_code == 409, unapproved.text
        assert "approval" in unapproved.json()["error"]["message"]
        assert _schedule_state(services, key) == seeded  # the start_at rolled back too
        approve = rita.post(
            f"/experiments/{key}/actions/approve",
            data={"csrf_token": csrf_of(rita.get(f"/experiments/{key}").text), "reason": "ok"},
            follow_redirects=False,
        )
        assert approve.status_code == 303
        before = _schedule_state(services, key)
        assert before[0] == "review"
        past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        bad = {
            "start_at": {},  # required
            "start_at ": {"start_at": "next tuesday"},
            "start_at  ": {"start_at": past},
            "end_at": {
                "start_at": soon.strftime("%Y-%m-%dT%H:%M"),
                "end_at": (soon - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            },
            "start_at   ": {"start_at": "9999-01-01T00:00"},  # past the supported range
            "start_at    ": {"start_at": "2027-01-01T00:00\x00"},
        }
        for field, data in bad.items():
            response = eve.post(
                f"/experiments/{key}/actions/schedule", data={"csrf_token": token, **data}
            )
            assert response.status_code == 422, (field, response.text)
            error = response.json()["error"]
            assert [d["loc"][0] for d in error["details"]] == [field.strip()], error
            assert _schedule_state(services, key) == before
        # a viewer, or a post without the CSRF token, is refused
        assert (
            eve.post(f"/experiments/{key}/actions/schedule", data={"start_at": "x"}).status_code
            == 403
        )
        done = eve.post(
            f"/experiments/{key}/actions/schedule",
            data={
                "csrf_token": token,
                "start_at": soon.strftime("%Y-%m-%dT%H:%M"),
                "end_at": later.strftime("%Y-%m-%dT%H:%M"),
                "reason": "after the release freeze",
            },
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"/experiments/{key}?done=schedule"
        status, start, end, audit = _schedule_state(services, key)
        assert status == "scheduled"
        assert start.replace(tzinfo=UTC) == soon and end.replace(tzinfo=UTC) == later
        assert audit == before[3] + 2  # the schedule's update and the move to scheduled
        page = eve.get(f"/experiments/{key}").text
        assert 'data-dialog="dialog-schedule"' not in page  # only from review
        assert 'data-dialog="dialog-start"' in page  # starting by hand is still offered
    report = Scheduler(services, owner="schedule-test").tick(now=soon - timedelta(minutes=1))
    assert key not in report.started and _schedule_state(services, key)[0] == "scheduled"
    report = Scheduler(services, owner="schedule-test").tick(now=soon + timedelta(minutes=1))
    assert report.started == [key] and _schedule_state(services, key)[0] == "running"


def _weights(services: Services, key: str) -> dict[str, float]:
    with services.sessions() as session:
        spec = spec_from_row(get_experiment(session=session, key=key))
    return {v.key: v.weight for v in spec.variants}


def test_configure_the_traffic_split_of_a_running_experiment(running: Services) -> None:
    """Percent per variant, summing to 100, through update_experiment (audited, the reason
    kept); anything else is a 422 naming the field and changes nothing."""
    key = "feed-redesign"
    with logged_in(running, "eve") as eve, logged_in(running, "vic") as vic:
        page = eve.get(f"/experiments/{key}").text
        token = csrf_of(page)
        assert 'id="dialog-traffic"' in page
        assert page.count('name="weight_key"') == 2 and 'value="50.0"' in page
        assert 'id="dialog-traffic"' not in vic.get(f"/experiments/{key}").text
        before, trail = _weights(running, key), _trail(running, key)
        assert before == {"control": 0.5, "treatment": 0.5}
        keys = ["control", "treatment"]

        def post(client: TestClient, csrf: str, **data: Any) -> Any:
            return client.post(
                f"/experiments/{key}/actions/traffic",
                data={"csrf_token": csrf, "weight_key": keys, "reason": "more to treatment"} | data,
                follow_redirects=False,
            )

        bad = [
            ({"weight": ["40", "50"]}, ["weights"]),  # sums to 90
            ({"weight": ["40"]}, ["weights"]),  # a variant missing
            ({"weight": ["40", "60"], "weight_key": ["control", "control"]}, ["weights"]),
            ({"weight": ["40", "60"], "weight_key": ["control", "other"]}, ["weights"]),
            ({"weight": ["nan", "60"]}, ["weights", "control"]),
            ({"weight": ["forty", "60"]}, ["weights", "control"]),
            ({"weight": ["-10", "110"]}, ["weights", "control"]),
            ({"weight": ["", "100"]}, ["weights", "control"]),
            ({"weight": ["40", "60"], "reason": ""}, ["reason"]),
        ]
        for data, loc in bad:
            response = post(eve, token, **data)
            assert response.status_code == 422, (data, response.text)
            assert response.json()["error"]["details"][0]["loc"] == loc, (data, response.text)
        viewer = post(vic, csrf_of(vic.get(f"/experiments/{key}").text), weight=["40", "60"])
        assert viewer.status_code == 403
        assert post(eve, "forged", weight=["40", "60"]).status_code == 403
        assert _weights(running, key) == before and _trail(running, key) == trail
        done = post(eve, token, weight=["33.3333", "66.6667"])
        assert done.status_code == 303, done.text
        assert _weights(running, key) == pytest.approx({"control": 0.333333, "treatment": 0.666667})
        audit, notes, status = _trail(running, key)
        assert (audit, notes, status) == (trail[0] + 1, trail[1], "running")
        with running.sessions() as session:
            (entry,) = list_audit(session=session, entity="experiment", entity_key=key, limit=1)
        assert entry.action == "update" and entry.reason == "more to treatment"


# ---------------------------------------------------------------- two dimensions at once


@pytest.fixture
def crossed(services: Services) -> Services:
    """A running experiment with country × device pre-registered as a crossed segment (the
    scenario's treatment hurts mobile), with the four users, on each backend."""
    scenario = load_scenario("global_positive")
    plan = dict(scenario.experiment.get("plan", {})) | {"crossed": [["country", "device"]]}
    scenario = scenario.model_copy(
        update={"experiment": scenario.experiment | {"plan": plan}, "units": 12000}
    )
    simulate_into(services, generate(scenario, key="crossed-check"))
    analyze(services=services, key="crossed-check")
    with services.sessions.begin() as session:
        for name, role in USERS:
            create_user(session=session, username=name, password="password-123", role=role)
    return services


def test_crossed_segments_are_a_grid_with_their_heterogeneity_test(crossed: Services) -> None:
    """Rows are country, columns device; each cell is the snapshot's effect ÷ SE, marked by
    the p corrected across the cells; Cochran's Q stated beside it (recomputed here from the
    cells' effects and standard errors and scipy's χ²); the row heatmap leaves them out."""
    key = "crossed-check"
    with logged_in(crossed, "vic") as vic:
        data = twin(vic, f"/experiments/{key}")
        html = vic.get(f"/experiments/{key}").text
    snapshot = latest(services=crossed, key=key)
    name = "country × device"
    assert all(r["segment"] != name for r in data["heatmap"]["rows"])
    assert {r["segment"] for r in data["heatmap"]["rows"]} == {"country", "device"}
    grids = data["crossed"]
    primary = next(iter(snapshot.overall())).metric  # the primary metric comes first
    assert (grids["metric"], grids["variant"]) == (primary, "treatment")
    (grid,) = grids["grids"]
    assert (grid["segment"], grid["a"], grid["b"]) == (name, "country", "device")
    cells = {
        r.segment.value: r
        for r in snapshot.results
        if r.segment is not None
        and r.segment.name == name
        and (r.metric, r.variant) == (grids["metric"], "treatment")
    }
    shown = {
        f"{row['value']} × {column}": cell
        for row in grid["rows"]
        for column, cell in zip(grid["columns"], row["cells"], strict=True)
        if cell is not None
    }
    assert set(shown) == set(cells) and len(grid["columns"]) == 3 and len(grid["rows"]) >= 3
    alpha = data["settings"]["alpha"]
    for value, cell in shown.items():
        row = cells[value]
        assert cell["z"] == pytest.approx(row.statistic, abs=0.005)
        assert cell["significant"] is (row.p_value_adjusted_cells < alpha)
        assert row.p_value_adjusted_cells >= row.p_value  # corrected across the cells
    # the heterogeneity test is the snapshot's, and is Cochran's Q on these cells
    test = grid["heterogeneity"]
    assert test["test"] == "cochran_q" and test["cells"] == len(cells)
    effects = np.array([r.abs_effect for r in cells.values()])
    # each cell's standard error from its fixed-horizon interval (normal, as the test reads it)
    half = sps.norm.ppf(1 - alpha / 2)
    ses = np.array([(r.abs_ci_high - r.abs_ci_low) / (2 * half) for r in cells.values()])
    weights = 1 / ses**2
    pooled = (weights * effects).sum() / weights.sum()
    q = float((weights * (effects - pooled) ** 2).sum())
    assert test["statistic"] == pytest.approx(q, rel=1e-6)
    assert test["p_value"] == pytest.approx(sps.chi2.sf(q, len(cells) - 1), rel=1e-6)
    assert f"Q = {q:.2f}, df = {len(cells) - 1}" in html
    assert "Two dimensions at once" in html and 'class="heatmap crossgrid"' in html
    # a cell drills down to its results
    first = next(iter(cells))
    link = f"?segment={quote(name)}&amp;value={quote(first)}#results"
    assert link in html
    drilled = twin(
        vic2 := logged_in(crossed, "vic"), f"/experiments/{key}", segment=name, value=first
    )
    vic2.close()
    assert {r["variant"] for s in drilled["sections"] for r in s["rows"]} == {"treatment"}


def test_crossed_grid_metric_choice_and_adhoc_breakdown(crossed: Services) -> None:
    """Another metric × treatment is chosen by the query; an unknown one is a 404. An ad-hoc
    breakdown by two exposure attributes is analysis.breakdown's, labelled exploratory;
    anything but one or two different attribute names is a 422."""
    key = "crossed-check"
    snapshot = latest(services=crossed, key=key)
    metrics = list(dict.fromkeys(r.metric for r in snapshot.results if r.segment is not None))
    with logged_in(crossed, "vic") as vic:
        other = metrics[-1]
        data = twin(vic, f"/experiments/{key}", cell_metric=other, cell_variant="treatment")
        assert data["crossed"]["metric"] == other
        (grid,) = data["crossed"]["grids"]
        row = next(
            r
            for r in snapshot.results
            if r.segment is not None
            and r.segment.name == "country × device"
            and r.metric == other
            and r.segment.value == f"{grid['rows'][0]['value']} × {grid['columns'][0]}"
        )
        assert grid["rows"][0]["cells"][0]["z"] == pytest.approx(row.statistic, abs=0.005)
        missing = vic.get(
            f"/experiments/{key}", params={"cell_metric": "nope", "cell_variant": "treatment"}
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"]
        # ad hoc: device rows, country columns, exploratory
        data = twin(vic, f"/experiments/{key}", breakdown="device,country")
        adhoc = data["breakdown"]
        assert adhoc["exploratory"] is True and adhoc["dimensions"] == ["device", "country"]
        assert "Exploratory" in adhoc["note"]
        (grid,) = adhoc["grids"]
        assert (grid["a"], grid["b"]) == ("device", "country")
        expected = breakdown(services=crossed, key=key, dimensions=("device", "country"))
        cells = {
            r.segment.value: r
            for r in expected.results
            if r.segment is not None
            and r.segment.name == "device × country"
            and (r.metric, r.variant) == (adhoc["metric"], "treatment")
        }
        for line in grid["rows"]:
            for column, cell in zip(grid["columns"], line["cells"], strict=True):
                row = cells[f"{line['value']} × {column}"]
                assert cell["z"] == pytest.approx(row.statistic, abs=0.005)
        html = vic.get(f"/experiments/{key}", params={"breakdown": "device,country"}).text
        assert "Breakdown by <strong>device × country</strong>" in html
        assert 'class="exploratory"' in html and 'value="device,country"' in html
        one = twin(vic, f"/experiments/{key}", breakdown="device")
        assert one["breakdown"]["grids"] == [] and one["breakdown"]["heatmap"]["rows"]
        unknown = twin(vic, f"/experiments/{key}", breakdown="device,nowhere")
        assert unknown["breakdown"]["dimensions"] == ["device", "nowhere"]
        for bad in ("device,device", "a,b,c", "country;drop", "x" * 300):
            response = vic.get(f"/experiments/{key}", params={"breakdown": bad})
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["error"]["code"]
        # the stored snapshot is unchanged by a breakdown
        assert latest(services=crossed, key=key).snapshot_id == snapshot.snapshot_id

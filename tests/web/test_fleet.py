"""The fleet view (``/``): filters and sorts in the URL, the JSON twin, the CSV export, badges
that name the next action, quick actions only for roles that may act, and the snapshot
summaries read once per stored snapshot."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.analysis.snapshot import Snapshot
from splitlab.app import create_app
from splitlab.decisions.recommendation import Code, Recommendation
from splitlab.decisions.velocity import milestones
from splitlab.domain import Role
from splitlab.services import Services
from splitlab.simulate.demo import EXPERIMENTS, seed_demo
from splitlab.store import fleet as store
from splitlab.store.snapshots import save_snapshot
from splitlab.web import fleet_model as model
from splitlab.web.fleet_charts import phases, velocity
from splitlab.web.fleet_model import Filters, badge_for, outcome_of, summarize_payload
from tests.web.demo_helpers import csrf_of, open_demo

SUBSET = (
    "checkout-redesign-abc",  # running, A/B/n, planned sample
    "feed-redesign",  # running
    "guided-onboarding",  # shipped
    "rich-product-pages",  # killed despite a win on conversion (guardrail)
    "search-autocomplete",  # review
    "onboarding-checklist",  # draft
    "payments-4-2-canary",  # running canary, error rate (lower is better)
    "aa-calibration-q3",  # stopped
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A small demo organisation (eight experiments with data and snapshots), on SQLite."""
    services = open_demo(tmp_path_factory.mktemp("fleet"), SUBSET)
    yield services
    services.close()


def fleet_json(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/", params=params | {"format": "json"})
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- the page


def test_anonymous_visitors_are_sent_to_log_in(demo: Services) -> None:
    with TestClient(create_app(services=demo)) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"
        assert client.get("/experiments.csv", follow_redirects=False).status_code == 303


def test_default_view_lists_the_active_experiments_with_their_next_action(
    ada: TestClient,
) -> None:
    data = fleet_json(ada)
    assert data["filters"]["range"] == "30d" and data["filters"]["status"] == "active"
    statuses = {e["key"]: e["status"] for e in data["experiments"]}
    assert set(statuses.values()) <= set(model.ACTIVE)
    assert "onboarding-checklist" not in statuses  # a draft is not active
    assert "guided-onboarding" not in statuses  # shipped long ago
    assert statuses["search-autocomplete"] == "review"
    rows = {e["key"]: e for e in data["experiments"]}
    assert rows["search-autocomplete"]["badge"] == "needs review"
    assert rows["search-autocomplete"]["needs_action"] is True
    # the canary's error rate rose significantly: lower is better, so it is bad news
    canary = rows["payments-4-2-canary"]
    assert canary["lower_is_better"] is True
    assert canary["lift"] > 0 and canary["significance"] == "significant"
    assert canary["badge"] == "roll back"  # the demo stores each experiment's recommendation
    # cards: the active experiments, those needing action first
    cards = data["cards"]
    assert {c["key"] for c in cards} == set(statuses)
    acting = [c["needs_action"] for c in cards]
    assert acting == sorted(acting, reverse=True)


def test_stored_recommendations_set_the_badge(
    ada: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from splitlab.web import fleet

    asked: list[list[str]] = []

    def stored(services: Services, keys: list[str]) -> dict[str, Recommendation]:
        asked.append(sorted(keys))
        return {"payments-4-2-canary": _rec(Code.ROLLBACK), "feed-redesign": _rec(Code.SHIP_GLOBAL)}

    monkeypatch.setattr(fleet, "_recommendations", stored)
    rows = {e["key"]: e for e in fleet_json(ada)["experiments"]}
    assert (
        rows["payments-4-2-canary"]["badge"],
        rows["payments-4-2-canary"]["recommendation"],
    ) == (
        "roll back",
        "ROLLBACK",
    )
    assert rows["feed-redesign"]["badge"] == "ship now" and rows["feed-redesign"]["needs_action"]
    assert "onboarding-checklist" not in asked[0]  # only analysed experiments are asked about
    html = ada.get("/").text
    assert 'data-action href="/experiments/payments-4-2-canary#actions">Roll back…</a>' in html


def test_the_page_renders_cards_lift_chips_and_charts(ada: TestClient) -> None:
    html = ada.get("/").text
    assert '<ul class="grid cards"' in html
    assert "Checkout redesign A/B/C" in html
    # the lift chip: arrow, signed estimate and its interval, and a word
    assert re.search(r"↑ \+\d+\.\d% \[-?\d+\.\d%, -?\d+\.\d%\]", html)
    assert "significant" in html
    assert 'role="progressbar"' in html
    for figure in ("launches", "win_rate", "timeline"):
        assert f'data-figure="{figure}"' in html
    assert '<script src="/assets/plotly.min.js"' in html and "cdn" not in html.lower()
    assert 'href="/static/fleet.css"' in html


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("team", "web", "team"),
        ("type", "prompt", "type"),
        ("significance", "significant", "significance"),
        ("significance", "insufficient", "significance"),
        ("outcome", "negative", "outcome"),
        ("outcome", "in_progress", "outcome"),
        ("status", "shipped", "status"),
    ],
)
def test_each_filter_keeps_exactly_the_matching_rows(
    ada: TestClient, name: str, value: str, field: str
) -> None:
    everything = fleet_json(ada, status="all", range="all")["experiments"]
    expected = sorted(e["key"] for e in everything if e[field] == value)
    params = {"status": "all", "range": "all"} | {name: value}
    got = sorted(e["key"] for e in fleet_json(ada, **params)["experiments"])
    assert got == expected
    assert got or value == "prompt"  # the demo subset has one of each of the others


def test_text_search_is_echoed_escaped(ada: TestClient) -> None:
    html = ada.get("/", params={"q": '<script>"x'}).text
    assert '<script>"x' not in html
    assert 'value="&lt;script&gt;&#34;x"' in html
    assert "q=%3Cscript%3E%22x" in html  # kept in the sort links


def test_text_search_matches_key_name_and_hypothesis_literally(ada: TestClient) -> None:
    got = fleet_json(ada, status="all", range="all", q="CANARY")["experiments"]
    assert [e["key"] for e in got] == ["payments-4-2-canary"]
    assert fleet_json(ada, status="all", range="all", q="%")["experiments"] == []


def test_time_range_drops_experiments_that_ended_before_it(ada: TestClient) -> None:
    everything = {e["key"] for e in fleet_json(ada, status="all", range="all")["experiments"]}
    week = {e["key"] for e in fleet_json(ada, status="all", range="7d")["experiments"]}
    assert "guided-onboarding" in everything and "guided-onboarding" not in week
    assert "checkout-redesign-abc" in week  # running: always in the period


@pytest.mark.parametrize("name", ["lift", "progress", "days", "name", "started"])
def test_sorting_by_a_column_either_way_with_missing_values_last(
    ada: TestClient, name: str
) -> None:
    field = {"days": "days_left", "started": "started_at"}.get(name, name)
    for descending in (False, True):
        sort = ("-" if descending else "") + name
        rows = fleet_json(ada, status="all", range="all", sort=sort)["experiments"]
        values = [r[field] for r in rows]
        present = [v for v in values if v is not None]
        if name == "name":
            present = [(r["name"] or r["key"]).lower() for r in rows]
        assert values[len(present) :] == [None] * (len(values) - len(present))
        assert present == sorted(present, reverse=descending), (sort, present)
    lifts = fleet_json(ada, status="all", range="all", sort="-lift")["experiments"]
    assert all(r["days_left"] is None for r in lifts if r["status"] != "running")
    assert any(r["days_left"] is not None for r in lifts)  # the A/B/C plan has an MDE
    assert lifts[0]["key"] == "payments-4-2-canary"  # +170% error rate: the largest change


def test_the_leaderboard_ranks_by_good_direction_effect(ada: TestClient) -> None:
    board = fleet_json(ada, range="all")["leaderboard"]
    keys = [r["key"] for r in board]
    assert "guided-onboarding" in keys  # the leaderboard ignores the status filter
    good = [-r["lift"] if r["lower_is_better"] else r["lift"] for r in board]
    assert good == sorted(good, reverse=True)
    assert keys[-1] == "payments-4-2-canary"  # a big rise in errors is the worst result
    ascending = fleet_json(ada, range="all", lsort="goodlift")["leaderboard"]
    assert [r["key"] for r in ascending] == list(reversed(keys))


def test_sort_links_and_filters_round_trip_through_the_url(ada: TestClient) -> None:
    html = ada.get("/", params={"team": "web", "sort": "lift", "range": "90d"}).text
    # the header link flips the sort and keeps the filters
    assert 'href="/?range=90d&amp;team=web&amp;sort=-lift"' in html
    assert 'aria-sort="ascending"' in html
    assert '<option value="90d" selected>' in html
    assert "<option selected>web</option>" in html


@pytest.mark.parametrize(
    "query",
    [
        "range=1y",
        "status=everything",
        "significance=maybe",
        "outcome=great",
        "sort=password",
        "lsort=-x",
        "page=0",
        "page=abc",
        "format=xml",
        "q=" + "x" * 201,
        "q=a%00b",
        "team=%1b",
    ],
)
def test_hostile_queries_are_refused_with_422_not_500(ada: TestClient, query: str) -> None:
    response = ada.get(f"/?{query}")
    assert response.status_code == 422, (query, response.status_code)
    api = ada.get(f"/?{query}", headers={"accept": "application/json"})
    assert api.status_code == 422


def test_csv_export_has_the_filtered_list_in_order(ada: TestClient) -> None:
    params = {"status": "all", "range": "all", "sort": "-lift"}
    listed = [e["key"] for e in fleet_json(ada, **params)["experiments"]]
    for response in (
        ada.get("/experiments.csv", params=params),
        ada.get("/", params=params | {"format": "csv"}),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["key"] for r in rows] == listed
        canary = next(r for r in rows if r["key"] == "payments-4-2-canary")
        assert float(canary["lift"]) > 0 and canary["significance"] == "significant"


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(demo: Services) -> None:
    from splitlab.web.common import csv_cell

    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("@sum") == "'@sum" and csv_cell("plain") == "plain"
    assert csv_cell(-0.5) == -0.5 and csv_cell(None) == ""


def test_a_viewer_sees_no_action_buttons(ada: TestClient, vic: TestClient) -> None:
    admin_page = ada.get("/").text
    viewer_page = vic.get("/").text
    assert "data-action" in admin_page  # e.g. Review on the experiment awaiting review
    assert 'data-action href="/experiments/search-autocomplete#review"' in admin_page
    assert "data-action" not in viewer_page
    assert 'href="/experiments/search-autocomplete"' in viewer_page  # still a link to read


# ---------------------------------------------------------------- summaries and rules


def _stored_payload(services: Services, key: str) -> tuple[int, dict[str, Any]]:
    with services.sessions() as session:
        rows = {e.key: e for e in store.fleet_experiments(session=session)}
        snapshot_id = rows[key].snapshot_id
        assert snapshot_id is not None
        return snapshot_id, store.snapshot_payloads(session=session, ids=[snapshot_id])[snapshot_id]


def test_a_summary_carries_the_typed_snapshots_primary_numbers(demo: Services) -> None:
    snapshot_id, payload = _stored_payload(demo, "checkout-redesign-abc")
    summary = summarize_payload(snapshot_id, payload)
    typed = Snapshot.from_json(payload)
    primary = next(m for m in typed.settings["metrics"] if m["role"] == "primary")
    assert summary.metric == primary["definition"]["key"]
    expected = [r for r in typed.overall() if r.metric == summary.metric]
    assert [r.variant for r in summary.rows] == [r.variant for r in expected]
    assert len(summary.rows) == 2  # A/B/C: two treatments against control
    for got, row in zip(summary.rows, expected, strict=True):
        assert got.rel_effect == row.rel_effect
        assert (got.rel_ci_low, got.rel_ci_high) == (row.rel_ci_low, row.rel_ci_high)
        assert got.p_value == row.p_value_adjusted
        assert (got.power, got.days_remaining, got.n_required) == (
            row.power,
            row.days_remaining,
            row.n_required,
        )
    assert summary.units == sum(u.n for u in typed.units)
    failing = [c for c in typed.health if c.severity != "info"]
    assert len(summary.warnings) == len(failing)


def test_summaries_are_read_once_per_snapshot_id(
    demo: Services, ada: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    model.SUMMARIES.clear()
    reads: list[list[int]] = []
    real = store.snapshot_payloads

    def counting(**kwargs: Any) -> dict[int, dict[str, Any]]:
        reads.append(sorted(kwargs["ids"]))
        return real(**kwargs)

    monkeypatch.setattr(store, "snapshot_payloads", counting)
    first = fleet_json(ada, status="all", range="all")
    assert len(reads) == 1 and len(reads[0]) == sum(
        1 for e in first["experiments"] if e["snapshot_id"]
    )
    assert fleet_json(ada, status="all", range="all") == first
    assert len(reads) == 1  # nothing re-read
    key = "feed-redesign"
    _, payload = _stored_payload(demo, key)
    del reads[1:]  # the helper's own read
    with demo.sessions.begin() as session:
        newer = save_snapshot(
            session=session,
            key=key,
            settings_hash="x",
            watermark="y",
            payload=payload,
            duration_ms=1.0,
        ).id
    again = fleet_json(ada, status="all", range="all")
    assert reads[1:] == [[newer]]  # only the new snapshot is read
    assert next(e for e in again["experiments"] if e["key"] == key)["snapshot_id"] == newer


def test_summaries_of_two_databases_do_not_mix() -> None:
    cache = model.SummaryCache(size=3)
    one = summarize_payload(1, {"units": [{"n": 5}]})
    other = summarize_payload(1, {"units": [{"n": 7}]})
    cache.put("a", one)
    assert cache.get_many("b", [1]) == ({}, [1])
    cache.put("b", other)
    assert cache.get_many("a", [1, 2]) == ({1: one}, [2])
    assert cache.get_many("b", [1])[0][1].units == 7
    for n in range(2, 5):  # the least recently used goes first
        cache.put("a", summarize_payload(n, {}))
    assert cache.get_many("b", [1]) == ({}, [1])


def _rec(code: Code) -> Recommendation:
    return Recommendation(
        experiment="x", code=code, label="", summary="", policy="default", policy_hash="h"
    )


@pytest.mark.parametrize(
    ("status", "code", "outcome", "label", "act"),
    [
        ("draft", None, "in_progress", "draft", False),
        ("review", None, "in_progress", "needs review", True),
        ("running", None, "in_progress", "running — 5 days left", False),
        ("running", Code.SHIP_GLOBAL, "in_progress", "ship now", True),
        ("running", Code.ROLLBACK, "in_progress", "roll back", True),
        ("running", Code.INVESTIGATE_INVALID_EXPERIMENT, "in_progress", "unhealthy", True),
        ("running", Code.HOLD_INCONCLUSIVE, "in_progress", "inconclusive", True),
        ("running", Code.KEEP_RUNNING, "in_progress", "running — 5 days left", False),
        ("readout", Code.KILL, "negative", "lost", True),
        ("readout", None, "neutral", "needs decision", True),
        ("shipped", None, "positive", "won", False),
        ("killed", None, "negative", "lost", False),
        ("shipped", None, "neutral", "inconclusive", False),
        ("rolled_back", None, "neutral", "rolled back", False),
    ],
)
def test_the_badge_names_the_next_action(
    status: str, code: Code | None, outcome: str, label: str, act: bool
) -> None:
    rec = _rec(code) if code else None
    badge = badge_for(status, rec=rec, outcome=outcome, days_left=5, critical=False, rollout=None)
    assert (badge.label, badge.act) == (label, act)


def test_a_critical_check_without_a_recommendation_is_unhealthy() -> None:
    badge = badge_for(
        "running", rec=None, outcome="in_progress", days_left=3, critical=True, rollout=None
    )
    assert (badge.label, badge.tone, badge.act) == ("unhealthy", "bad", True)


def test_outcome_counts_a_win_that_was_killed_as_a_loss() -> None:
    assert outcome_of("running", "good") == "in_progress"
    assert outcome_of("shipped", "good") == "positive"
    assert outcome_of("killed", "good") == "negative"
    assert outcome_of("readout", None) == "neutral"
    assert outcome_of("stopped", "bad") == "negative"


def test_filters_write_back_only_what_differs_from_the_defaults() -> None:
    assert Filters().query() == ""
    assert Filters(team="web & co").query(sort="-lift") == "team=web+%26+co&sort=-lift"


# ---------------------------------------------------------------- velocity and timeline


def _moves(key: str, *steps: tuple[int, str | None, str]) -> list[store.Transition]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [store.Transition(key, base + timedelta(days=d), f, t) for d, f, t in steps]


def test_milestones_and_phases_from_the_audit_log() -> None:
    moves = _moves(
        "a",
        (0, None, "draft"),
        (2, "draft", "review"),
        (4, "review", "running"),
        (18, "running", "stopped"),
        (19, "stopped", "readout"),
        (21, "readout", "rolling_out"),
        (26, "rolling_out", "shipped"),
    )
    when = milestones(moves)
    assert (when.started.day, when.stopped.day, when.decided.day, when.ended.day) == (
        5,
        19,
        22,
        27,
    )
    spans = [(name, (end - start).days) for name, start, end in phases(moves, moves[-1].at)]
    assert spans == [("draft", 2), ("review", 2), ("running", 14), ("readout", 3), ("rollout", 5)]
    # a recorded decision before the terminal move counts from when it was recorded
    early = milestones(moves, decided_at=moves[3].at + timedelta(days=1))
    assert early.decided == moves[3].at + timedelta(days=1)


def test_velocity_counts_medians_and_win_rate() -> None:
    from splitlab.web.fleet_model import FleetRow

    def row(key: str, status: str, outcome: str) -> FleetRow:
        experiment = store.FleetExperiment(
            key, key, "feature", "t", "o", status, "", {}, None, None,
            datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), None,
        )  # fmt: skip
        badge = model.Badge("", "neutral", False)
        return FleetRow(experiment, None, None, None, "", None, outcome, None, "", None, badge)

    rows = [
        row("won", "shipped", "positive"),
        row("lost", "killed", "negative"),
        row("flat", "killed", "neutral"),
        row("live", "running", "in_progress"),
    ]
    dates = {
        "won": milestones(_moves("won", (0, None, "draft"), (1, "review", "running"),
                                 (11, "running", "stopped"), (13, "readout", "shipped"))),
        "lost": milestones(_moves("lost", (0, None, "draft"), (2, "review", "running"),
                                  (22, "running", "stopped"), (30, "readout", "killed"))),
        "flat": milestones(_moves("flat", (0, None, "draft"), (3, "review", "running"),
                                  (17, "running", "stopped"), (21, "readout", "killed"))),
        "live": milestones(_moves("live", (0, None, "draft"), (40, "review", "running"))),
    }  # fmt: skip
    now = datetime(2026, 3, 1, tzinfo=UTC)
    v = velocity(rows, dates, since=None, now=now)
    assert v["months"][:3] == ["2026-01", "2026-02", "2026-03"]
    assert v["launched"][:2] == [3, 1] and v["completed"][:2] == [3, 0]
    assert v["median_duration_days"] == 14.0  # runs of 10, 20 and 14 days
    assert v["median_stop_to_decision_days"] == 4.0  # 2, 8 and 4 days
    assert (v["won"], v["lost"], v["inconclusive"], v["unfinished"]) == (1, 1, 1, 1)
    assert v["win_rate"] == round(1 / 3, 3)
    stacked = {t["name"]: t["y"][0] for t in v["figures"]["win_rate"]["data"]}
    assert stacked == {"won": 1 / 3, "lost": 1 / 3, "inconclusive": 1 / 3, "unfinished": 0}
    assert v["previous"] is None
    # the last 30 days (from 2026-01-30): only "live" ran (from 2026-02-10); the 30 days
    # before: the three others, which all stopped by 2026-01-23
    recent = velocity(rows, dates, since=now - timedelta(days=30), now=now)
    assert (recent["won"], recent["lost"], recent["unfinished"]) == (0, 0, 1)
    assert recent["median_duration_days"] is None and recent["win_rate"] is None
    before = recent["previous"]
    counts = (before["won"], before["lost"], before["inconclusive"], before["unfinished"])
    assert counts == (1, 1, 1, 0)
    assert before["win_rate"] == round(1 / 3, 3)
    assert before["median_duration_days"] == 14.0


# ---------------------------------------------------------------- store (both backends)


def test_the_store_reads_newest_snapshot_ids_payloads_and_transitions(
    services: Services,
) -> None:
    wanted = ("onboarding-checklist", "search-autocomplete")
    seed_demo(services, analyze=False, experiments=[e for e in EXPERIMENTS if e.key in wanted])
    with services.sessions.begin() as session:
        ids = [
            save_snapshot(
                session=session,
                key="search-autocomplete",
                settings_hash="h",
                watermark=str(n),
                payload={"n": n},
                duration_ms=0.0,
            ).id
            for n in range(3)
        ]
    with services.sessions() as session:
        rows = {e.key: e for e in store.fleet_experiments(session=session)}
        assert rows["search-autocomplete"].snapshot_id == max(ids)
        assert rows["onboarding-checklist"].snapshot_id is None
        assert rows["search-autocomplete"].created_at.tzinfo is not None
        payloads = store.snapshot_payloads(session=session, ids=[*ids, 10**6])
        assert payloads == {i: {"n": n} for n, i in enumerate(ids)}
        moves = store.transitions(session=session, keys=["search-autocomplete"])
        assert [m.to_status for m in moves] == ["draft", "review"]
        assert moves[0].at <= moves[1].at
        assert store.rollout_percents(session=session) == {}
        assert store.first_decisions(session=session) == {}


def test_a_new_transition_shows_on_the_next_request(
    services: Services, client: TestClient, keys: Any
) -> None:
    from splitlab.domain import Principal, Status
    from splitlab.store import experiments as repo

    seed_demo(
        services,
        analyze=False,
        experiments=[e for e in EXPERIMENTS if e.key == "search-autocomplete"],
    )
    _log_in_admin(client, keys)
    first = fleet_json(client, status="all", range="all")
    assert [(e["key"], e["status"]) for e in first["experiments"]] == [
        ("search-autocomplete", "review")
    ]
    with services.sessions.begin() as session:
        repo.transition(
            session=session,
            key="search-autocomplete",
            to=Status.DRAFT,
            actor=Principal(username="ada", role=Role.ADMIN),
            reason="not yet",
        )
    again = fleet_json(client, status="all", range="all")
    row = again["experiments"][0]
    assert (row["status"], row["badge"]) == ("draft", "draft")
    html = client.get("/", params={"status": "all", "range": "all"}).text
    found = re.search(r'<script type="application/json" id="fleet-figures">(.*?)</script>', html)
    assert found
    gantt = json.loads(found.group(1))["timeline"]["data"]
    bars = {trace["name"]: trace["y"] for trace in gantt}
    assert bars["draft"] == ["search-autocomplete"] * 2  # drafted, reviewed, back to draft
    assert bars["review"] == ["search-autocomplete"]


def _log_in_admin(client: TestClient, keys: Any) -> None:
    keys.user("ada", Role.ADMIN)
    token = csrf_of(client.get("/login").text)
    data = {"username": "ada", "password": "password-123", "csrf_token": token}
    assert client.post("/login", data=data, follow_redirects=False).status_code == 303


def _figures(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="fleet-figures">(.*?)</script>', html)
    assert found
    figures: dict[str, Any] = json.loads(found.group(1))
    return figures


def test_a_ramp_shows_its_traffic_share(services: Services, client: TestClient, keys: Any) -> None:
    from splitlab.store import experiments as repo
    from splitlab.store.ramps import create_ramp

    key = "premium-bundles"  # in readout
    seed_demo(services, analyze=False, experiments=[e for e in EXPERIMENTS if e.key == key])
    with services.sessions.begin() as session:
        spec = repo.spec_from_row(repo.get_experiment(session=session, key=key))
        treatment = next(v.key for v in spec.variants if not v.is_control)
        create_ramp(
            session=session,
            key=key,
            variant=treatment,
            steps=[{"percent": 10, "hold_hours": 24}, {"percent": 100, "hold_hours": 0}],
            actor="demo",
        )
    with services.sessions() as session:
        assert store.rollout_percents(session=session) == {key: 10.0}
    _log_in_admin(client, keys)
    row = fleet_json(client)["experiments"][0]
    assert (row["key"], row["status"], row["badge"]) == (key, "rolling_out", "rolling out 10%")
    gantt = _figures(client.get("/").text)["timeline"]["data"]
    rollout = next(t for t in gantt if t["name"] == "rollout")
    assert rollout["y"] == [key] and rollout["text"] == ["10%"]


def test_the_list_pages_keep_the_filters(ada: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from splitlab.web import fleet

    monkeypatch.setattr(fleet, "PER_PAGE", 3)
    query = {"status": "all", "range": "all", "sort": "key"}
    everything = [e["key"] for e in fleet_json(ada, **query)["experiments"]]
    pages = []
    for number in (1, 2, 3):
        html = ada.get("/", params=query | {"page": str(number)}).text
        table = html[html.index('<table class="list fleet-list">') :]
        table = table[: table.index("</table>")]
        pages.append(re.findall(r"<code>([a-z0-9-]+)</code>", table))
    assert pages == [everything[0:3], everything[3:6], everything[6:9]]
    assert (
        'href="/?range=all&amp;status=all&amp;sort=key&amp;page=2#list">Next'
        in ada.get("/", params={"status": "all", "range": "all", "sort": "key"}).text
    )


def test_the_move_log_catches_an_entry_committed_below_the_newest_id(
    services: Services,
) -> None:
    """On PostgreSQL a transaction may commit a lower audit id after a higher one was read:
    the log notices by the count and reads everything again."""
    from splitlab.store.audit import write_audit
    from splitlab.web.fleet import MoveLog

    key = "search-autocomplete"
    seed_demo(services, analyze=False, experiments=[e for e in EXPERIMENTS if e.key == key])
    log = MoveLog()

    def read() -> list[str]:
        with services.sessions() as session:
            return [m.to_status for m in log.read(session, services)[key]]

    def add(to: str, from_: str, *, id_: int, later: int) -> None:
        with services.sessions.begin() as session:
            row = write_audit(
                session=session,
                entity="experiment",
                entity_key=key,
                action="transition",
                actor="t",
                from_status=from_,
                to_status=to,
                at=datetime.now(UTC) + timedelta(seconds=later),
            )
            row.id = id_

    assert read() == ["draft", "review"]
    with services.sessions() as session:
        top = store.transition_stats(session=session)[1]
    add("draft", "review", id_=top + 10, later=1)
    assert read() == ["draft", "review", "draft"]  # added incrementally
    add("review", "draft", id_=top + 5, later=2)  # committed late, below the newest id
    assert read() == ["draft", "review", "draft", "review"]
    assert read() == ["draft", "review", "draft", "review"]  # unchanged: reused

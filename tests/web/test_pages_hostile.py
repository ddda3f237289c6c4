"""Hostile posts and odd values on the experiment page (found attacking it as a new user), on
SQLite and PostgreSQL: each is a 4xx in the error shape and changes nothing — and what the
seeded demo and the page say must agree with the numbers."""

from __future__ import annotations

from typing import Any

from splitlab.analysis.snapshot import CheckName, HealthCheck, Severity
from splitlab.decisions.service import latest_recommendations
from splitlab.services import Services
from splitlab.simulate.demo import EXPERIMENTS, seed_demo
from splitlab.store.audit import list_audit
from splitlab.store.experiments import get_experiment, list_notes
from splitlab.store.snapshots import latest_snapshot, save_snapshot
from splitlab.store.users import create_user
from splitlab.web import experiment_view as ev
from tests.web.test_experiment_page import USERS, csrf_of, logged_in

KEY = "feed-redesign"
CANARY = "payments-4-2-canary"
SHIPPING = "checkout-redesign-abc"


def _seed(services: Services, keys: tuple[str, ...]) -> None:
    seed_demo(services, experiments=[e for e in EXPERIMENTS if e.key in keys])
    with services.sessions.begin() as session:
        for name, role in USERS:
            create_user(session=session, username=name, password="password-123", role=role)


def _trail(services: Services, key: str) -> tuple[int, int, str]:
    with services.sessions() as session:
        audit = len(list_audit(session=session, entity="experiment", entity_key=key))
        notes = len(list_notes(session=session, key=key))
        status = get_experiment(session=session, key=key).status
    return audit, notes, status


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return dict(body["error"])


def test_the_demo_stores_a_recommendation_so_the_fleet_badges_say_what_to_do(
    services: Services,
) -> None:
    _seed(services, (SHIPPING, KEY, CANARY))
    stored = latest_recommendations(services=services, keys=[SHIPPING, KEY, CANARY])
    assert {k: r.code.value for k, r in stored.items()} == {
        SHIPPING: "SHIP_GLOBAL",  # decisive on its always-valid interval
        KEY: "KEEP_RUNNING",  # a novelty lift still fading
        CANARY: "ROLLBACK",
    }
    with logged_in(services, "ada") as ada:
        fleet = ada.get("/", params={"format": "json", "range": "all", "status": "all"})
        assert fleet.status_code == 200, fleet.text
        badges = {e["key"]: e["badge"] for e in fleet.json()["experiments"]}
    assert badges[SHIPPING] == "ship now" and badges[CANARY] == "roll back", badges
    assert badges[KEY].startswith("running"), badges


def test_forms_with_control_characters_non_finite_numbers_or_huge_ids_change_nothing(
    services: Services,
) -> None:
    _seed(services, (KEY,))
    url = f"/experiments/{KEY}/actions"
    with logged_in(services, "ada") as ada:
        token = csrf_of(ada.get(f"/experiments/{KEY}").text)
        before = _trail(services, KEY)
        refused = [
            ("note", {"reason": "looks \x01 fine"}, "control characters"),
            ("note", {"reason": "\x00"}, "control characters"),
            ("ship", {"reason": "x", "ramp": "nan,100"}, "finite"),
            ("ship", {"reason": "x", "ramp": "10,100", "hold_hours": "inf"}, "finite"),
            ("ship", {"reason": "x", "ramp": "10,100", "hold_hours": "-nan"}, "finite"),
            ("extend", {"reason": "x", "days": "1e999"}, "whole number"),
        ]
        for action, data, words in refused:
            error = _error(ada.post(f"{url}/{action}", data=data | {"csrf_token": token}), 422)
            assert words in error["message"], (action, data, error)
        assert _trail(services, KEY) == before
        # an override that waits for a reviewer, then approvals naming ids no decision has
        kill = ada.post(
            f"{url}/kill",
            data={"reason": "gut feeling", "csrf_token": token},
            follow_redirects=False,
        )
        assert kill.status_code == 303 and kill.headers["location"].endswith("kill_pending")
        before = _trail(services, KEY)
        for number in ("99999999999999999999999", str(2**31), "0", "-5"):
            response = ada.post(
                f"{url}/approve_decision",
                data={"reason": "ok", "decision": number, "csrf_token": token},
            )
            _error(response, 404)
        assert _trail(services, KEY) == before == (before[0], before[1], "running")


def test_the_heatmap_never_reads_minus_zero_and_counts_carry_separators() -> None:
    assert [ev.signed(v) for v in (-0.04, 0.04, -0.0, 3.44, -1.06, None)] == [
        "0.0",
        "0.0",
        "0.0",
        "+3.4",
        "-1.1",
        "—",
    ]
    assert ev.count(40039.0) == "40,039" and ev.count(None) == "—"


def test_axis_ticks_carry_the_decimals_they_need() -> None:
    # landing-redirect's axis read -5%, -2%, 0, +2%, +5% with its ticks at ±2.5%
    assert [ev.tick_label(v) for v in (-0.05, -0.025, 0.0, 0.025, 0.05, 0.0025)] == [
        "-5%",
        "-2.5%",
        "0",
        "+2.5%",
        "+5%",
        "+0.25%",
    ]
    labels = [label for _, label in ev.shared_axis([]).ticks]
    assert all(label == "0" or label[-1] == "%" for label in labels) and "0" in labels


def test_a_critical_health_finding_is_said_above_the_results(services: Services) -> None:
    # landing-redirect's page coloured its rows "leans better" under a failed SRM check
    _seed(services, (KEY,))
    with logged_in(services, "ada") as ada:
        page = ada.get(f"/experiments/{KEY}").text
        assert "Do not read these results" not in page  # a healthy experiment
        with services.sessions.begin() as session:
            row = latest_snapshot(session=session, key=KEY)
            assert row is not None
            payload = dict(row.payload)
            srm = HealthCheck(
                check=CheckName.SRM,
                severity=Severity.CRITICAL,
                value=1e-6,
                message="Sample ratio mismatch: the split does not match the weights.",
            )
            payload["health"] = [*payload["health"], srm.to_json()]
            save_snapshot(  # the same plan and data: the page serves this one
                session=session,
                key=KEY,
                settings_hash=row.settings_hash,
                watermark=row.watermark,
                payload=payload,
                duration_ms=0.0,
            )
        page = ada.get(f"/experiments/{KEY}").text
        assert "Do not read these results" in page and "(srm)" in page
        fragment = ada.get(f"/experiments/{KEY}", params={"fragment": "results"}).text
        assert "Do not read these results" in fragment
        for junk in ("junk", "results2", "<b>"):  # only the one fragment there is
            _error(ada.get(f"/experiments/{KEY}", params={"fragment": junk}), 422)

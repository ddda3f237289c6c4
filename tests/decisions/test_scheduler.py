"""The scheduler: one runner by a lease, scheduled starts and stops, guardrail auto-stop,
ramp steps checked against guardrails — on SQLite and PostgreSQL. The restart test runs real
scheduler processes and kills one with SIGKILL mid-ramp (test_scheduler_restart.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from splitlab.decisions.recommendation import Code, Reason, Recommendation, Stage
from splitlab.decisions.scheduler import Scheduler, TickReport, breach_reason, guardrail_breach
from splitlab.domain import Status
from splitlab.services import Services
from splitlab.store import ramps
from tests.decisions.automation_helpers import audit, make_experiment, status_of, weights_of

NOW = datetime.now(UTC)


def recommendation(
    key: str, code: Code = Code.HOLD_INCONCLUSIVE, *, guardrail: str | None = None
) -> Recommendation:
    reasons = []
    if guardrail:
        reasons.append(
            Reason(
                stage=Stage.GUARDRAILS,
                code="guardrail_breach",
                message=guardrail,
                metric="latency",
                variant="treatment-a",
                evidence={"relative_effect": 0.4, "ci": [0.3, 0.5], "margin": 0.05},
            )
        )
    return Recommendation(
        experiment=key,
        code=code,
        label="test",
        summary=f"{code.value} for {key}",
        reasons=reasons,
        policy="default",
        policy_hash="0" * 64,
        snapshot_id=7,
    )


class FakeEngine:
    """The decision engine's answers, set per experiment; records each call."""

    def __init__(self) -> None:
        self.answers: dict[str, Callable[[], Recommendation]] = {}
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, services: Services, key: str, refresh: bool) -> Recommendation:
        self.calls.append((key, refresh))
        answer = self.answers.get(key)
        return answer() if answer else recommendation(key)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def scheduler(services: Services, engine: FakeEngine) -> Scheduler:
    return Scheduler(services, owner="runner-1", recommender=engine)


def test_guardrail_breach_rule() -> None:
    assert guardrail_breach(recommendation("x", Code.ROLLBACK))
    assert guardrail_breach(recommendation("x", Code.HOLD_GUARDRAIL_RISK, guardrail="p99 +40%"))
    assert not guardrail_breach(recommendation("x", Code.HOLD_GUARDRAIL_RISK))
    assert not guardrail_breach(recommendation("x", Code.SHIP_GLOBAL))
    assert not guardrail_breach(recommendation("x", Code.KILL, guardrail="p99 +40%"))
    text = breach_reason(recommendation("x", Code.ROLLBACK, guardrail="errors tripled"))
    assert text == "guardrail breach (ROLLBACK): errors tripled"


def test_one_runner_holds_the_lease(services: Services, engine: FakeEngine) -> None:
    first = Scheduler(services, owner="a", lease_seconds=60, recommender=engine)
    second = Scheduler(services, owner="b", lease_seconds=60, recommender=engine)
    assert first.tick(now=NOW).ran
    assert not second.tick(now=NOW).ran
    assert first.tick(now=NOW).ran  # renewing its own lease
    assert first.holder()[0] == "a"
    first.release()
    assert second.tick(now=NOW).ran and not first.tick(now=NOW).ran
    assert second.holder()[0] == "b"


def test_an_expired_lease_passes_to_another_runner(services: Services) -> None:
    dead = Scheduler(services, owner="dead", lease_seconds=0.3)
    alive = Scheduler(services, owner="alive", lease_seconds=30)
    assert dead.acquire() and not alive.acquire()
    time.sleep(0.4)
    assert alive.acquire() and not dead.acquire()


def test_concurrent_runners_one_wins(services: Services) -> None:
    """Eight runners, each with its own engine (connections), race for the lease at once."""
    runners = [
        Scheduler(Services.open(services.settings), owner=f"r{i}", lease_seconds=60)
        for i in range(8)
    ]
    barrier = threading.Barrier(len(runners))
    won: list[str] = []

    def race(runner: Scheduler) -> None:
        barrier.wait()
        if runner.acquire():
            won.append(runner.owner)

    threads = [threading.Thread(target=race, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(won) == 1
        assert runners[0].holder()[0] == won[0]
    finally:
        for runner in runners:
            runner.services.close()


def test_scheduled_start_at_start_at(services: Services, scheduler: Scheduler) -> None:
    start = NOW + timedelta(hours=2)
    make_experiment(services, "later", to=Status.SCHEDULED, start_at=start)
    assert scheduler.tick(now=start - timedelta(seconds=1)).started == []
    assert status_of(services, "later") == "scheduled"
    assert scheduler.tick(now=start).started == ["later"]
    assert status_of(services, "later") == "running"
    assert scheduler.tick(now=start + timedelta(minutes=1)).started == []
    moves = audit(services, "later", "transition")
    assert [(m.from_status, m.to_status, m.actor) for m in moves][-1] == (
        "scheduled",
        "running",
        "scheduler",
    )
    assert "start_at" in moves[-1].reason
    with services.sessions() as session:
        from splitlab.store.experiments import get_experiment

        kept = get_experiment(session=session, key="later").start_at
    assert kept is not None and kept.replace(tzinfo=UTC) == start


def test_stop_at_end_at(services: Services, scheduler: Scheduler) -> None:
    end = NOW + timedelta(days=7)
    make_experiment(services, "ends", to=Status.RUNNING, end_at=end)
    assert scheduler.tick(now=end - timedelta(seconds=1)).stopped == []
    assert scheduler.tick(now=end).stopped == ["ends"]
    assert status_of(services, "ends") == "stopped"
    last = audit(services, "ends", "transition")[-1]
    assert (last.to_status, last.actor) == ("stopped", "scheduler") and "end_at" in last.reason
    assert scheduler.tick(now=end + timedelta(days=1)).stopped == []


def test_stop_after_max_days(services: Services, scheduler: Scheduler) -> None:
    make_experiment(services, "capped", to=Status.RUNNING, plan={"max_days": 3})
    with services.sessions() as session:
        from splitlab.store.experiments import get_experiment

        started = get_experiment(session=session, key="capped").start_at
    assert started is not None
    started = started.replace(tzinfo=UTC)
    assert scheduler.tick(now=started + timedelta(days=3, seconds=-1)).stopped == []
    assert scheduler.tick(now=started + timedelta(days=3)).stopped == ["capped"]
    assert audit(services, "capped", "transition")[-1].reason == "plan.max_days (3) reached"


def test_guardrail_auto_stop(services: Services, scheduler: Scheduler, engine: FakeEngine) -> None:
    make_experiment(services, "bad", to=Status.RUNNING)
    make_experiment(services, "fine", to=Status.RUNNING)
    engine.answers["bad"] = lambda: recommendation("bad", Code.ROLLBACK, guardrail="errors x3")
    engine.answers["fine"] = lambda: recommendation("fine", Code.HOLD_GUARDRAIL_RISK, guardrail="?")
    report = scheduler.tick(now=NOW)
    assert report.auto_stopped == ["bad"] and report.errors == []
    assert (status_of(services, "bad"), status_of(services, "fine")) == ("rolled_back", "running")
    assert set(engine.calls) == {("bad", False), ("fine", False)}
    entry = audit(services, "bad", "auto_stop")[0]
    assert entry.actor == "scheduler"
    assert entry.reason == "guardrail breach (ROLLBACK): errors x3"
    assert entry.changes is not None
    assert entry.changes["reasons"][0]["evidence"]["relative_effect"] == 0.4
    assert entry.changes["snapshot_id"] == 7
    moved = audit(services, "bad", "transition")[-1]
    assert (moved.from_status, moved.to_status, moved.actor) == (
        "running",
        "rolled_back",
        "scheduler",
    )
    assert scheduler.tick(now=NOW).auto_stopped == []


def test_an_engine_failure_is_reported_and_the_tick_goes_on(
    services: Services, scheduler: Scheduler, engine: FakeEngine
) -> None:
    make_experiment(services, "broken", to=Status.RUNNING)
    make_experiment(services, "bad", to=Status.RUNNING)

    def fail() -> Recommendation:
        raise RuntimeError("warehouse unreachable")

    engine.answers["broken"] = fail
    engine.answers["bad"] = lambda: recommendation("bad", Code.ROLLBACK, guardrail="errors x3")
    report = scheduler.tick(now=NOW)
    assert report.auto_stopped == ["bad"]
    assert report.errors == ["guardrail check broken: warehouse unreachable"]
    assert status_of(services, "broken") == "running"


PLAN = [{"percent": 10, "hold_hours": 24}, {"percent": 50, "hold_hours": 24}, {"percent": 100}]


def _ramp(services: Services, key: str) -> int:
    make_experiment(services, key, to=Status.READOUT)
    with services.sessions.begin() as session:
        return ramps.create_ramp(
            session=session, key=key, variant="treatment-a", steps=PLAN, actor="ed", now=NOW
        ).id


def test_ramp_steps_on_schedule_after_a_guardrail_check(
    services: Services, scheduler: Scheduler, engine: FakeEngine
) -> None:
    _ramp(services, "promo")
    assert scheduler.tick(now=NOW + timedelta(hours=23)).ramp_steps == []
    assert engine.calls == [("promo", False)]  # nothing due: watched on the latest snapshot
    assert scheduler.tick(now=NOW + timedelta(hours=24)).ramp_steps == [("promo", 1)]
    assert engine.calls[-1] == ("promo", True)  # a fresh analysis before the step
    assert weights_of(services, "promo")["treatment-a"] == 0.5
    assert scheduler.tick(now=NOW + timedelta(hours=30)).ramp_steps == []  # held 24 h again
    assert scheduler.tick(now=NOW + timedelta(hours=48)).ramp_steps == [("promo", 2)]
    assert status_of(services, "promo") == "shipped"
    percents = [e.changes["percent"] for e in audit(services, "promo", "ramp_step")]  # type: ignore[index]
    assert percents == [10, 50, 100]
    assert all(e.actor == "scheduler" for e in audit(services, "promo", "ramp_step")[1:])


def test_ramp_rolls_back_on_a_guardrail_breach(
    services: Services, scheduler: Scheduler, engine: FakeEngine
) -> None:
    ramp_id = _ramp(services, "promo")
    assert scheduler.tick(now=NOW + timedelta(hours=24)).ramp_steps == [("promo", 1)]
    engine.answers["promo"] = lambda: recommendation(
        "promo", Code.HOLD_GUARDRAIL_RISK, guardrail="p95 latency +40% (margin 5%)"
    )
    report = scheduler.tick(now=NOW + timedelta(hours=48))
    assert report.ramps_rolled_back == ["promo"] and report.ramp_steps == []
    assert status_of(services, "promo") == "rolled_back"
    assert weights_of(services, "promo")["treatment-a"] == 0.5  # never reached the next step
    with services.sessions() as session:
        ramp = ramps.latest_ramp(session=session, key="promo")
        assert (ramp.id, ramp.status, ramp.current_step) == (ramp_id, "rolled_back", 1)
    entry = audit(services, "promo", "ramp_rollback")[0]
    assert entry.actor == "scheduler"
    assert entry.reason == "guardrail breach (HOLD_GUARDRAIL_RISK): p95 latency +40% (margin 5%)"
    assert entry.changes is not None and entry.changes["evidence"]["code"] == "HOLD_GUARDRAIL_RISK"
    assert audit(services, "promo", "transition")[-1].to_status == "rolled_back"
    assert scheduler.tick(now=NOW + timedelta(hours=96)).ramp_steps == []


def test_a_ramp_never_steps_blind(
    services: Services, scheduler: Scheduler, engine: FakeEngine
) -> None:
    _ramp(services, "promo")

    def fail() -> Recommendation:
        raise RuntimeError("analysis failed")

    engine.answers["promo"] = fail
    report = scheduler.tick(now=NOW + timedelta(hours=24))
    assert report.ramp_steps == [] and report.errors == ["ramp promo: analysis failed"]
    with services.sessions() as session:
        ramp = ramps.latest_ramp(session=session, key="promo")
        assert (ramp.current_step, ramp.last_error) == (0, "analysis failed")
    del engine.answers["promo"]
    assert scheduler.tick(now=NOW + timedelta(hours=25)).ramp_steps == [("promo", 1)]
    with services.sessions() as session:
        assert ramps.latest_ramp(session=session, key="promo").last_error == ""


def test_two_runners_never_repeat_a_step(services: Services, engine: FakeEngine) -> None:
    """Even if two runners held the lease (clock skew), the conditional update lets one
    step through: both tick the same due ramp, one step is applied."""
    _ramp(services, "promo")
    a = Scheduler(services, owner="a", recommender=engine)
    b = Scheduler(services, owner="b", recommender=engine)
    due = NOW + timedelta(hours=24)
    assert a.tick(now=due).ramp_steps == [("promo", 1)]
    with services.sessions() as session:
        stale = ramps.latest_ramp(session=session, key="promo")
    # b read the ramp before a's step: it tries step 0 → 1 again and is refused
    report = TickReport()
    b._advance_one(stale.id, "promo", 0, due, report)
    assert report.ramp_steps == []
    assert [e.changes["step"] for e in audit(services, "promo", "ramp_step")] == [0, 1]  # type: ignore[index]


def _cli(monkeypatch: pytest.MonkeyPatch, services: Services, *args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from splitlab.cli import app

    settings = services.settings
    monkeypatch.setenv("SPLITLAB_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("SPLITLAB_WAREHOUSE_URL", settings.resolved_warehouse_url())
    monkeypatch.setenv("SPLITLAB_HOME", str(settings.home))
    monkeypatch.setenv("SPLITLAB_SECRET_KEY", "test-secret")
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_tick_ramp_show_and_rollback(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = NOW + timedelta(hours=1)
    make_experiment(services, "later", to=Status.SCHEDULED, start_at=start)
    code, out = _cli(monkeypatch, services, "scheduler", "tick", "--now", NOW.isoformat())
    assert code == 0, out
    assert json.loads(out)["ran"] is True and json.loads(out)["started"] == []
    code, out = _cli(monkeypatch, services, "scheduler", "tick", "--now", start.isoformat())
    assert code == 0 and json.loads(out)["started"] == ["later"], out
    # a server holding the lease: the CLI tick steps aside and says who holds it
    server = Scheduler(services, owner="server-1", lease_seconds=60)
    assert server.acquire()
    code, out = _cli(monkeypatch, services, "scheduler", "tick")
    assert code == 0 and json.loads(out)["ran"] is False
    assert json.loads(out)["lease"]["owner"] == "server-1"
    code, out = _cli(monkeypatch, services, "scheduler", "status")
    assert code == 0 and "lease: server-1 until" in out and "URL not set" in out, out
    server.release()
    code, out = _cli(monkeypatch, services, "scheduler", "status", "--json")
    assert json.loads(out)["lease"]["owner"] is None

    _ramp(services, "promo")
    code, out = _cli(monkeypatch, services, "ramp", "show", "promo")
    assert code == 0 and "[10%] → 50% → 100%" in out and "is active" in out, out
    code, out = _cli(monkeypatch, services, "ramp", "show", "promo", "--json")
    assert json.loads(out)["current_percent"] == 10
    code, out = _cli(monkeypatch, services, "ramp", "rollback", "promo", "--reason", " ")
    assert code == 1 and "reason" in out
    code, out = _cli(monkeypatch, services, "ramp", "rollback", "promo", "--reason", "errors up")
    assert code == 0 and "rolled back" in out, out
    assert status_of(services, "promo") == "rolled_back"
    code, out = _cli(monkeypatch, services, "ramp", "show", "nope")
    assert code == 1 and "nope" in out


def test_a_ramp_between_steps_rolls_back_on_a_breach(
    services: Services, scheduler: Scheduler, engine: FakeEngine
) -> None:
    _ramp(services, "promo")
    engine.answers["promo"] = lambda: recommendation("promo", Code.ROLLBACK, guardrail="errors x3")
    report = scheduler.tick(now=NOW + timedelta(hours=2))  # step 2 is due only at 24 h
    assert report.ramps_rolled_back == ["promo"] and report.ramp_steps == []
    assert engine.calls == [("promo", False)]
    assert status_of(services, "promo") == "rolled_back"
    assert audit(services, "promo", "ramp_rollback")[0].reason == (
        "guardrail breach (ROLLBACK): errors x3"
    )

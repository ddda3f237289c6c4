"""The scheduler with the real decision engine on simulated data: a running canary whose
error rate triples is rolled back by the guardrail auto-stop, and a ramp of a treatment that
harms a guardrail is rolled back before its next step — although the ramp's own weight change
makes the SRM check fire (DuckDB warehouse, SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from splitlab.decisions.scheduler import Scheduler
from splitlab.domain import Status
from splitlab.services import Services
from splitlab.simulate import generate
from splitlab.simulate.run import SIMULATOR, ensure_running_experiment, import_simulated
from splitlab.store import experiments as repo
from splitlab.store import ramps
from tests.decisions.automation_helpers import audit, status_of
from tests.simulate.conftest import START, open_services


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = open_services(Path(tmp_path_factory.mktemp("scheduler-engine")))
    runs = [
        generate(name, start=START)
        for name in ("canary_regression", "guardrail_harm", "latency_regression")
    ]
    for data in runs:
        ensure_running_experiment(services, data)
    import_simulated(services, runs)
    with services.sessions.begin() as session:  # its 14 days are over: a readout to ramp from
        for key in ("guardrail_harm", "latency_regression"):
            for to in (Status.STOPPED, Status.READOUT):
                repo.transition(session=session, key=key, to=to, actor=SIMULATOR)
    yield services
    services.close()


def test_a_harmful_canary_is_auto_stopped(simulated: Services) -> None:
    scheduler = Scheduler(simulated, owner="engine-test")
    report = scheduler.tick()
    assert "canary_regression" in report.auto_stopped, report.errors
    assert status_of(simulated, "canary_regression") == "rolled_back"
    entry = audit(simulated, "canary_regression", "auto_stop")[0]
    assert entry.changes is not None and entry.changes["code"] == "ROLLBACK"
    assert entry.reason.startswith("guardrail breach (ROLLBACK): ")
    assert any(r["metric"] == "cr-error-rate" for r in entry.changes["reasons"]), entry.changes
    scheduler.release()


def test_a_ramp_of_a_guardrail_harm_rolls_back(simulated: Services) -> None:
    key = "guardrail_harm"
    now = datetime.now(UTC)
    with simulated.sessions.begin() as session:
        ramps.create_ramp(
            session=session,
            key=key,
            variant="treatment",
            steps=[{"percent": 10, "hold_hours": 1}, {"percent": 100}],
            actor="ed",
            now=now,
        )
    # (auto_stop off: no watching between steps, so the step's own fresh check decides)
    scheduler = Scheduler(simulated, owner="engine-test", auto_stop=False)
    assert scheduler.tick(now=now + timedelta(minutes=59)).ramp_steps == []
    report = scheduler.tick(now=now + timedelta(hours=1))
    assert report.ramps_rolled_back == [key], (report.errors, report.ramp_steps)
    assert status_of(simulated, key) == "rolled_back"
    entry = audit(simulated, key, "ramp_rollback")[0]
    assert entry.reason.startswith("guardrail breach ("), entry.reason
    assert "page load" in entry.reason
    assert entry.changes is not None
    evidence = entry.changes["evidence"]
    assert [r["metric"] for r in evidence["reasons"] if r["stage"] == "guardrails"] == [
        "gh-load-ms"
    ]
    # the step-0 weights caused an SRM finding: the check judged the guardrails regardless
    assert evidence["code"] == "ROLLBACK"
    scheduler.release()


def test_a_ramp_between_steps_is_watched(simulated: Services) -> None:
    """A latency regression ramped to 5%: long before its next step, the tick's watch on the
    latest snapshot rolls it back."""
    key = "latency_regression"
    now = datetime.now(UTC)
    with simulated.sessions.begin() as session:
        ramps.create_ramp(
            session=session,
            key=key,
            variant="edge_v2",
            steps=[{"percent": 5, "hold_hours": 24}, {"percent": 100}],
            actor="ed",
            now=now,
        )
    scheduler = Scheduler(simulated, owner="engine-test")
    report = scheduler.tick(now=now + timedelta(minutes=5))
    assert report.ramps_rolled_back == [key], report.errors
    assert status_of(simulated, key) == "rolled_back"
    scheduler.release()

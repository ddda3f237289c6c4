"""The scheduler survives SIGKILL in the middle of a ramp: two real scheduler processes
run side by side (only the lease holder works), the holder is killed after a few steps, the
other takes the lease once it expires and finishes the ramp — every step applied exactly
once, in order (the audit log proves it). SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from splitlab.domain import Status
from splitlab.services import Services
from splitlab.store import ramps
from tests.decisions.automation_helpers import audit, make_experiment, status_of, weights_of

RUNNER = Path(__file__).with_name("scheduler_runner.py")
ROOT = Path(__file__).parents[2]
STEPS = [{"percent": 5 * (i + 1), "hold_hours": 0} for i in range(20)]
LEASE_SECONDS = 1.5


def _start(services: Services, owner: str, log: Path, pause: float) -> subprocess.Popen[bytes]:
    settings = services.settings
    env = os.environ | {
        "SPLITLAB_DATABASE_URL": settings.resolved_database_url(),
        "SPLITLAB_WAREHOUSE_URL": settings.resolved_warehouse_url(),
        "SPLITLAB_HOME": str(settings.home),
        "SPLITLAB_SECRET_KEY": "test-secret",
        "SPLITLAB_WEBHOOK_URL": "",
        "PYTHONPATH": str(ROOT / "src"),
    }
    return subprocess.Popen(
        [sys.executable, str(RUNNER), owner, str(LEASE_SECONDS), str(pause)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _steps(services: Services) -> list[int]:
    return [e.changes["step"] for e in audit(services, "promo", "ramp_step")]  # type: ignore[index]


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_ramp_then_resume(services: Services, tmp_path: Path) -> None:
    make_experiment(services, "promo", to=Status.READOUT)
    with services.sessions.begin() as session:
        ramps.create_ramp(
            session=session, key="promo", variant="treatment-a", steps=STEPS, actor="ed"
        )
    first = _start(services, "first", tmp_path / "first.log", pause=0.25)
    second = None
    try:
        _wait(lambda: len(_steps(services)) >= 2, 60, "the first runner's steps")
        second = _start(services, "second", tmp_path / "second.log", pause=0.05)
        _wait(lambda: bool(_reports(tmp_path / "second.log")), 60, "the second runner")
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        at_kill = _steps(services)
        assert len(at_kill) < len(STEPS), "the kill must land mid-ramp"
        _wait(lambda: status_of(services, "promo") == "shipped", 120, "the ramp to finish")
        _wait(lambda: _logged_steps(tmp_path / "second.log")[-1:] == [len(STEPS) - 1], 10, "log")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
    # every step once, in order: none skipped, none repeated across the kill
    assert _steps(services) == list(range(len(STEPS)))
    assert weights_of(services, "promo") == {"control": 0.0, "treatment-a": 1.0}
    with services.sessions() as session:
        ramp = ramps.latest_ramp(session=session, key="promo")
        assert (ramp.status, ramp.current_step) == ("completed", len(STEPS) - 1)
    # while the first runner lived, the second only waited for the lease; then it resumed
    # exactly where the first had stopped
    firsts = _reports(tmp_path / "first.log")
    seconds = _reports(tmp_path / "second.log")
    assert seconds[0]["ran"] is False
    first_steps = [s["step"] for r in firsts for s in r["ramp_steps"]]
    second_steps = _logged_steps(tmp_path / "second.log")
    # (a kill between a step's commit and its report line hides that step from the log)
    assert first_steps == list(range(1, len(first_steps) + 1))
    assert len(at_kill) - 2 <= len(first_steps) <= len(at_kill) - 1
    assert second_steps == list(range(len(at_kill), len(STEPS)))


def _logged_steps(log: Path) -> list[int]:
    return [s["step"] for r in _reports(log) for s in r["ramp_steps"]]  # type: ignore[attr-defined]


def _reports(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]

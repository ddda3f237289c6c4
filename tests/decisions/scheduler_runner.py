"""A scheduler process for the restart test: ticks in a loop against the app store named by
the environment (SPLITLAB_DATABASE_URL …), with an engine that finds no guardrail breach,
printing each tick's report as a JSON line. Killed with SIGKILL by the test."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

from splitlab.config import Settings
from splitlab.decisions.recommendation import Code, Recommendation
from splitlab.decisions.scheduler import Scheduler
from splitlab.services import Services


def all_clear(services: Services, key: str, refresh: bool) -> Recommendation:
    time.sleep(0.02)  # an analysis takes a moment: a kill may land here or in a step
    return Recommendation(
        experiment=key,
        code=Code.KEEP_RUNNING,
        label="PENDING",
        summary="no guardrail breach",
        policy="default",
        policy_hash="0" * 64,
    )


def main() -> None:
    owner, lease_seconds, pause = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    services = Services.open(Settings())
    scheduler = Scheduler(services, owner=owner, lease_seconds=lease_seconds, recommender=all_clear)
    while True:
        report = scheduler.tick(now=datetime.now(UTC))
        print(json.dumps(report.to_json()), flush=True)
        time.sleep(pause)


if __name__ == "__main__":
    main()

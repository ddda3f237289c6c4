"""Ramps as the API and the CLI see them: show the latest ramp, roll back the active one.

The ramp itself (plan, steps, conditional updates) is ``store.ramps``; the scheduler
advances it (``decisions.scheduler``); a ship decision with a rollout plan starts it
(``decisions.actions``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from splitlab.domain import Principal
from splitlab.store.experiments import get_experiment
from splitlab.store.ramps import latest_ramp, ramp_to_dict, rollback_ramp

if TYPE_CHECKING:
    from splitlab.services import Services


def show_ramp(*, services: Services, key: str) -> dict[str, Any]:
    """The latest ramp of experiment ``key`` with the experiment's status (404 when the
    experiment does not exist or never had a ramp)."""
    with services.sessions() as session:
        ramp = latest_ramp(session=session, key=key)
        status = get_experiment(session=session, key=key).status
        return ramp_to_dict(ramp) | {"experiment_status": status}


def rollback_rollout(
    *, services: Services, key: str, reason: str, actor: Principal
) -> dict[str, Any]:
    """Roll back the active ramp of ``key`` now (rolling_out → rolled_back), the reason in
    the audit log; 409 when no ramp is active, 422 without a reason."""
    with services.sessions.begin() as session:
        ramp = rollback_ramp(session=session, key=key, reason=reason, actor=actor)
        status = get_experiment(session=session, key=key).status
        return ramp_to_dict(ramp) | {"experiment_status": status}

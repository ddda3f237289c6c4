"""A transition decided on a stale read of the status is refused, not written over the newer
state (a decision and the scheduler moving the same experiment at the same moment)."""

from __future__ import annotations

from typing import Any

import pytest

from splitlab.domain import Status
from splitlab.errors import ConflictError
from splitlab.services import Services
from splitlab.store import experiments as store_experiments
from splitlab.store.experiments import transition
from tests.decisions.decision_helpers import OWNER, make_experiment, status


def test_a_transition_from_a_stale_status_is_a_conflict(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_experiment(services, "race", to=Status.RUNNING)
    checked = store_experiments.check_transition

    def someone_stops_it_meanwhile(**kwargs: Any) -> None:
        checked(**kwargs)  # the guard passed on what this session read: running
        monkeypatch.setattr(store_experiments, "check_transition", checked)
        with services.sessions.begin() as other:
            transition(session=other, key="race", to=Status.STOPPED, actor=OWNER)

    monkeypatch.setattr(store_experiments, "check_transition", someone_stops_it_meanwhile)
    with pytest.raises(ConflictError, match="changed state"), services.sessions.begin() as late:
        transition(session=late, key="race", to=Status.ROLLED_BACK, actor=OWNER)
    assert status(services, "race") == Status.STOPPED.value


def test_a_transition_from_the_current_status_still_moves(services: Services) -> None:
    make_experiment(services, "calm", to=Status.RUNNING)
    with services.sessions.begin() as session:
        transition(session=session, key="calm", to=Status.STOPPED, actor=OWNER)
    assert status(services, "calm") == Status.STOPPED.value

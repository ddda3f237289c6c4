"""Cache versions: bumped with the transaction that changes experiments, users or keys (and
only then); this process's subscribers hear of it after the commit, never after a rollback."""

from __future__ import annotations

from datetime import timedelta

import pytest

from splitlab.domain import ExperimentSpec, Principal, Role, Scope
from splitlab.services import Services
from splitlab.store.experiments import create_experiment
from splitlab.store.users import create_api_key, create_user, set_role
from splitlab.store.versions import ACCESS, EXPERIMENTS, current_versions
from splitlab.store.web_sessions import check_web_session, create_web_session
from tests.api.helpers import experiment_body

ADMIN = Principal("root", Role.ADMIN)


@pytest.fixture
def heard(services: Services) -> list[str]:
    groups: list[str] = []
    services.changes.subscribe(EXPERIMENTS, lambda: groups.append(EXPERIMENTS))
    services.changes.subscribe(ACCESS, lambda: groups.append(ACCESS))
    return groups


def test_changes_bump_their_group_once_per_transaction(
    services: Services, heard: list[str]
) -> None:
    before = current_versions(services.engine)
    assert before == {EXPERIMENTS: 0, ACCESS: 0}
    with services.sessions.begin() as session:
        create_user(session=session, username="u", password="password-123", role=Role.ADMIN)
        session.flush()
        create_api_key(session=session, username="u", scope=Scope.READ)
    assert current_versions(services.engine) == {EXPERIMENTS: 0, ACCESS: 1}
    assert heard == [ACCESS]

    with services.sessions.begin() as session:
        spec = ExperimentSpec.model_validate(experiment_body("v", metrics={}))
        create_experiment(session=session, spec=spec, actor=ADMIN)
    assert current_versions(services.engine) == {EXPERIMENTS: 1, ACCESS: 1}
    assert heard == [ACCESS, EXPERIMENTS]


def test_a_rollback_bumps_nothing_and_tells_nobody(services: Services, heard: list[str]) -> None:
    with pytest.raises(RuntimeError), services.sessions.begin() as session:
        create_user(session=session, username="u", password="password-123", role=Role.ADMIN)
        session.flush()
        raise RuntimeError("changed my mind")
    assert current_versions(services.engine) == {EXPERIMENTS: 0, ACCESS: 0}
    assert heard == []


def test_sessions_and_reads_do_not_bump(services: Services, heard: list[str]) -> None:
    with services.sessions.begin() as session:
        create_user(session=session, username="u", password="password-123", role=Role.EDITOR)
    heard.clear()
    with services.sessions.begin() as session:
        token = create_web_session(session=session, username="u", lifetime=timedelta(days=1))
    with services.sessions.begin() as session:
        assert check_web_session(session=session, token=token, idle=timedelta(minutes=5))
    assert current_versions(services.engine)[ACCESS] == 1
    assert heard == []
    with services.sessions.begin() as session:
        set_role(session=session, username="u", role=Role.VIEWER, actor="test")
    assert current_versions(services.engine)[ACCESS] == 2
    assert heard == [ACCESS]

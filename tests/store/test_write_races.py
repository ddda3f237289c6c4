"""Two requests writing the same metric definition, or creating the same experiment, at the
same moment (found firing a dozen identical POSTs at a server: ten answered 500): the one that
read before the other committed gets a 409 in the error shape and writes nothing, and the
versions stay one per change — SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from splitlab.domain import ExperimentSpec, MetricDefinition, Principal, Role
from splitlab.errors import ConflictError
from splitlab.services import Services
from splitlab.store import metrics as repo
from splitlab.store.experiments import create_experiment, get_experiment
from tests.api.helpers import experiment_body

ACTOR = Principal(username="olga", role=Role.EDITOR)
METRIC = {"key": "errors", "kind": "count", "event": "error"}


def _definition(**extra: Any) -> MetricDefinition:
    return MetricDefinition.model_validate(METRIC | extra)


def _upsert(services: Services, **extra: Any) -> None:
    with services.sessions.begin() as session:
        repo.upsert_metric(session=session, definition=_definition(**extra), actor=ACTOR)


def _read_nothing(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``session``'s next lookup see no row: what it read before the other request
    committed its row."""
    monkeypatch.setattr(session, "scalar", lambda *args, **kwargs: None)


def test_a_metric_change_decided_on_a_stale_version_is_a_conflict(services: Services) -> None:
    _upsert(services, margin=0.1)
    with pytest.raises(ConflictError, match="meanwhile"), services.sessions.begin() as late:
        # read version 1 (held: the session's identity map keeps rows weakly) …
        held = repo.get_metric(session=late, key="errors")
        assert held.version == 1
        _upsert(services, margin=0.2)  # … while another request makes version 2
        repo.upsert_metric(session=late, definition=_definition(margin=0.3), actor=ACTOR)
    with services.sessions() as session:
        versions = repo.list_metric_versions(session=session, key="errors")
        current = repo.get_metric(session=session, key="errors")
        assert [(v["version"], v["definition"]["margin"]) for v in versions] == [
            (2, 0.2),
            (1, 0.1),
        ]
        assert (current.version, current.margin) == (2, 0.2)


def test_creating_a_metric_that_appeared_meanwhile_is_a_conflict(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upsert(services, margin=0.1)
    with pytest.raises(ConflictError, match="meanwhile"), services.sessions.begin() as late:
        _read_nothing(late, monkeypatch)
        repo.upsert_metric(session=late, definition=_definition(margin=0.3), actor=ACTOR)
    with services.sessions() as session:
        versions = repo.list_metric_versions(session=session, key="errors")
        assert [(v["version"], v["definition"]["margin"]) for v in versions] == [(1, 0.1)]


def test_creating_an_experiment_that_appeared_meanwhile_is_a_conflict(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upsert(services)
    spec = ExperimentSpec.model_validate(experiment_body("race", metrics={"primary": "errors"}))
    with services.sessions.begin() as session:
        create_experiment(session=session, spec=spec, actor=ACTOR)
    other = spec.model_copy(update={"name": "The late one"})
    with pytest.raises(ConflictError, match="exists"), services.sessions.begin() as late:
        _read_nothing(late, monkeypatch)
        create_experiment(session=late, spec=other, actor=ACTOR)
    with services.sessions() as session:
        assert get_experiment(session=session, key="race").name == spec.name


def test_the_api_answers_a_conflict_with_409(
    client: TestClient, editor: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(**kwargs: Any) -> Any:
        raise ConflictError("metric 'errors' was changed by another request meanwhile")

    monkeypatch.setattr(repo, "upsert_metric", busy)
    response = client.post("/api/metrics", json=METRIC, headers=editor)
    assert response.status_code == 409 and set(response.json()) == {"error"}

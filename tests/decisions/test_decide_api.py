"""The decision routes on both backends: the recommendation, and reading and storing
policies (YAML or JSON, roles, 4xx naming the field path, audit)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from splitlab.decisions.policy import BUILTIN
from splitlab.domain import Role
from splitlab.services import Services
from splitlab.store.audit import list_audit
from tests.api.helpers import create_running
from tests.conftest import Keys

YAML = "application/yaml"


def test_the_recommendation_of_a_new_experiment_says_keep_running(
    client: TestClient, editor: dict[str, str], reviewer: dict[str, str], keys: Keys
) -> None:
    create_running(client, editor, reviewer)
    viewer = keys.headers("vic", Role.VIEWER)
    response = client.get("/api/experiments/checkout/recommendation", headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["experiment"] == "checkout"
    assert body["code"] == "KEEP_RUNNING" and body["label"] == "INCOMPLETE"
    assert body["reasons"][0] == {
        "stage": "trust",
        "code": "trust_ok",
        "message": "No critical health finding: the results can be trusted.",
        "metric": None,
        "variant": None,
        "segment": None,
        "evidence": {},
    }
    assert body["reasons"][1]["code"] == "too_few_units"
    assert body["policy"] == "default" and body["policy_hash"] == BUILTIN.policy_hash()
    assert isinstance(body["snapshot_id"], int)
    again = client.get("/api/experiments/checkout/recommendation?refresh=true", headers=viewer)
    assert again.status_code == 200 and again.json()["code"] == "KEEP_RUNNING"


def test_unknown_experiments_and_anonymous_callers_are_refused(
    client: TestClient, admin: dict[str, str]
) -> None:
    missing = client.get("/api/experiments/nope/recommendation", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/api/experiments/nope/recommendation").status_code == 401
    assert client.get("/api/policies/default").status_code == 401


def test_the_default_policy_reads_as_the_built_in_until_it_is_stored(
    client: TestClient, admin: dict[str, str], editor: dict[str, str], services: Services
) -> None:
    fresh = client.get("/api/policies/default", headers=editor)
    assert fresh.status_code == 200
    assert fresh.json()["stored"] is False and fresh.json()["document"] is None
    assert fresh.json()["resolved"] == BUILTIN.document()
    text = (
        "maturity:\n  min_days: 10\n"
        "guardrails:\n  rules:\n    - {metric: lat-ms, max_ratio: 1.25}\n"
    )
    refused = client.put(
        "/api/policies/default", content=text, headers=editor | {"content-type": YAML}
    )
    assert refused.status_code == 403
    stored = client.put(
        "/api/policies/default", content=text, headers=admin | {"content-type": YAML}
    )
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["stored"] is True and body["version"] == 1 and body["updated_by"] == "alice"
    assert datetime.fromisoformat(body["updated_at"]).utcoffset() == timedelta(0)
    assert body["document"] == {
        "maturity": {"min_days": 10},
        "guardrails": {"rules": [{"metric": "lat-ms", "max_ratio": 1.25}]},
    }
    assert body["resolved"]["maturity"]["min_days"] == 10
    assert body["resolved"]["maturity"]["min_units_per_variant"] == 100  # built-in kept
    second = client.put("/api/policies/default", json={"maturity": {"min_days": 9}}, headers=admin)
    assert second.json()["version"] == 2 and second.json()["resolved"]["guardrails"]["rules"] == []
    assert client.get("/api/policies/default", headers=editor).json()["version"] == 2
    with services.sessions() as session:
        audit = list_audit(session=session, entity="policy", entity_key="default")
    assert [a.action for a in audit] == ["update", "create"]
    assert audit[0].changes == {"before": body["document"], "after": {"maturity": {"min_days": 9}}}


def test_a_bad_policy_is_a_422_naming_the_field_path(
    client: TestClient, admin: dict[str, str]
) -> None:
    bad = {"guardrails": {"rules": [{"metric": "lat", "max_ratio": 0.8}]}, "trust": {"x": 1}}
    response = client.put("/api/policies/team-web", json=bad, headers=admin)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "guardrails.rules[0].max_ratio: must be > 1" in error["message"]
    assert {"loc": ["trust.x"], "msg": "unknown field"} in error["details"]
    yaml = client.put(
        "/api/policies/team-web", content="trust: [", headers=admin | {"content-type": YAML}
    )
    assert yaml.status_code == 422 and "(document)" in yaml.json()["error"]["message"]
    broken = client.put(
        "/api/policies/team-web",
        content="{not json",
        headers=admin | {"content-type": "application/json"},
    )
    assert broken.status_code == 400
    for name in ("Default", "team-", "experiment-UPPER", "other"):
        assert client.get(f"/api/policies/{name}", headers=admin).status_code == 422, name
    assert client.get("/api/policies/team-web", headers=admin).json()["stored"] is False


def test_an_experiment_policy_changes_its_recommendation(
    client: TestClient, editor: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, editor, reviewer)
    before = client.get("/api/experiments/checkout/recommendation", headers=editor).json()
    assert before["code"] == "KEEP_RUNNING"
    missing = client.put("/api/policies/experiment-nope", json={}, headers=editor)
    assert missing.status_code == 404
    relaxed = {"maturity": {"min_units_per_variant": 0, "min_days": 0}}
    stored = client.put("/api/policies/experiment-checkout", json=relaxed, headers=editor)
    assert stored.status_code == 200, stored.text
    after = client.get("/api/experiments/checkout/recommendation", headers=editor).json()
    assert after["policy"] == "experiment-checkout"
    assert after["policy_hash"] != before["policy_hash"]
    assert after["code"] == "HOLD_INCONCLUSIVE"  # no data: nothing significant
    assert "primary_no_estimate" in [r["code"] for r in after["reasons"]]

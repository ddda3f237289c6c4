"""Hostile input to the decision routes (found attacking them as a new user): each gets a
clear 4xx in the error shape and changes nothing, on SQLite and PostgreSQL.

- the recommendation and the report of an experiment that has not started: 409, nothing
  analysed or stored (it used to analyse a draft and answer "keep running");
- policies: a key given twice, an empty body, alias bombs, deep nesting, control characters,
  wrong types;
- decisions: JSON ``true`` or ``"3"`` as days, a segment named twice or a value the results
  never saw, a decision id past 32 bits.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from splitlab.decisions.actions import approve_decision
from splitlab.domain import Principal, Role
from splitlab.errors import NotFoundError
from splitlab.services import Services
from splitlab.store.policies import get_policy
from splitlab.store.snapshots import save_snapshot
from tests.api.helpers import METRIC, create_running, experiment_body

KEY = "checkout"
YAML = {"content-type": "application/yaml"}
POLICY = f"/api/policies/experiment-{KEY}"


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return dict(body["error"])


def _stored(client: TestClient, headers: dict[str, str]) -> tuple[Any, ...]:
    """What a refused request must leave as it was."""
    experiment = client.get(f"/api/experiments/{KEY}", headers=headers).json()
    return (
        experiment["status"],
        experiment["end_at"],
        client.get(f"/api/experiments/{KEY}/decisions", headers=headers).json(),
        client.get(POLICY, headers=headers).json(),
        len(client.get(f"/api/experiments/{KEY}/audit", headers=headers).json()["entries"]),
    )


def test_an_experiment_that_has_not_started_has_nothing_to_decide_or_report(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert client.post("/api/metrics", json=METRIC, headers=admin).status_code in (200, 201)
    assert client.post("/api/experiments", json=experiment_body(KEY), headers=admin).status_code
    for path in (
        f"/api/experiments/{KEY}/recommendation",
        f"/api/experiments/{KEY}/recommendation?refresh=true",
        f"/api/experiments/{KEY}/report.md",
        f"/api/experiments/{KEY}/report.pdf",
    ):
        error = _error(client.get(path, headers=admin), 409)
        assert "has not started" in error["message"] and error["details"] == {"status": "draft"}
    results = client.get(f"/api/experiments/{KEY}/results", headers=admin)
    assert results.status_code == 404, results.text  # nothing was analysed on the way
    entries = client.get(f"/api/experiments/{KEY}/audit", headers=admin).json()["entries"]
    assert not [e for e in entries if e["action"] == "recommendation"]


def test_bad_policy_documents_are_refused_and_store_nothing(
    client: TestClient, admin: dict[str, str], editor: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer)
    before = _stored(client, admin)
    bomb = 'a0: &a0 ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
    )
    list_bomb = "guardrails:\n  latency_metrics: *a9\n"
    cases: list[tuple[str | bytes, dict[str, str], int, str]] = [
        ("maturity: {min_days: 3}\nmaturity: {min_days: 4}\n", YAML, 422, "appears twice"),
        ("maturity: {min_days: 3, min_days: 4}", YAML, 422, "appears twice"),
        ('{"maturity": {"min_days": 3}, "maturity": {}}', {}, 422, "appears twice"),
        ("", YAML, 422, "empty"),
        ("   \n", YAML, 422, "empty"),
        (bomb, YAML, 422, "unknown field"),
        (bomb + list_bomb, YAML, 422, "latency_metrics"),
        ("[" * 5000 + "]" * 5000, {"content-type": "application/json"}, 422, ""),
        ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 400)), YAML, 422, ""),
        ("x" * 300_000, YAML, 413, ""),
        ("maturity: {min_days: ten}", YAML, 422, "maturity.min_days"),
        ("maturity: {min_days: .nan}", YAML, 422, "maturity.min_days"),
        ('guardrails: {latency_metrics: ["\x07"]}', YAML, 422, ""),
        ("maturity: \x00", YAML, 422, ""),
        (b"\xff\xfe\x00garbage", YAML, 422, ""),
        ("!!python/object/apply:os.system ['true']", YAML, 422, "not valid YAML"),
        ("name: other", YAML, 422, "name"),
        ("- 1\n- 2\n", YAML, 422, "mapping"),
    ]
    for text, headers, status, words in cases:
        started = time.perf_counter()
        response = client.put(POLICY, content=text, headers=editor | headers)
        error = _error(response, status)
        assert words in error["message"], (text[:40], error)
        assert time.perf_counter() - started < 5.0, text[:40]
    assert _stored(client, admin) == before
    assert client.get(POLICY, headers=admin).json()["stored"] is False
    fine = client.put(POLICY, content="{}", headers=editor | YAML)  # an explicit empty overlay
    assert fine.status_code == 200 and fine.json()["document"] == {}


def test_decisions_refuse_lax_types_repeated_or_unseen_segments_and_huge_ids(
    client: TestClient, services: Services, admin: dict[str, str], reviewer: dict[str, str]
) -> None:
    create_running(client, admin, reviewer, plan={"segments": ["country"]})
    with services.sessions.begin() as session:  # results exist for country = DE and US only
        rows = [
            {
                "metric": "conversion",
                "variant": "one-page",
                "segment": {"name": "country", "value": v},
            }
            for v in ("DE", "US")
        ]
        save_snapshot(
            session=session,
            key=KEY,
            settings_hash="h",
            watermark="w",
            payload={"results": rows},
            duration_ms=0.0,
        )
    url = f"/api/experiments/{KEY}/decisions"
    before = _stored(client, admin)
    ship = {"action": "ship", "variant": "one-page", "rationale": "wins in DE"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"action": "extend", "rationale": "x", "days": True}, "days"),
        ({"action": "extend", "rationale": "x", "days": "3"}, "days"),
        ({"action": "extend", "rationale": "x", "days": 3.0}, "days"),
        (ship | {"follows": True}, "follows"),
        (ship | {"segments": [{"name": "country", "value": "XX"}]}, "not a value of 'country'"),
        (
            ship
            | {
                "segments": [
                    {"name": "country", "value": "DE"},
                    {"name": "country", "value": "DE"},
                ]
            },
            "named twice",
        ),
        (ship | {"segments": [{"name": "nosuch", "value": "DE"}]}, "pre-registered"),
    ]
    for body, words in cases:
        error = _error(client.post(url, json=body, headers=admin), 422)
        assert words in error["message"], (body, error)
    assert _stored(client, admin) == before
    for decision_id in (2**31, 2**63, 10**30):
        with pytest.raises(NotFoundError):
            approve_decision(
                services=services,
                key=KEY,
                decision_id=decision_id,
                reviewer=Principal(username="rita", role=Role.REVIEWER),
            )
    assert _stored(client, admin) == before
    targeted = client.post(
        url, json=ship | {"segments": [{"name": "country", "value": "DE"}]}, headers=admin
    )
    assert targeted.status_code == 201, targeted.text  # a value the results saw is accepted


def test_simultaneous_policy_writes_each_get_their_own_version(services: Services) -> None:
    # 32 simultaneous PUTs of one policy ended at version 20: each read the version and wrote
    # it + 1, so writes were lost from the count and audited with stale "before" documents
    from concurrent.futures import ThreadPoolExecutor

    from splitlab.decisions.service import store_policy
    from splitlab.store.audit import list_audit

    admin = Principal(username="alice", role=Role.ADMIN)

    def write(i: int) -> None:
        store_policy(
            services=services,
            name="team-growth",
            document=f"maturity: {{min_days: {i + 1}}}",
            actor=admin,
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(24)))
    with services.sessions() as session:
        entries = sorted(
            list_audit(session=session, entity="policy", entity_key="team-growth", limit=100),
            key=lambda e: e.id,
        )
        stored = get_policy(session=session, name="team-growth")
        assert stored is not None and stored.version == 24
    assert [e.reason for e in entries] == [f"policy team-growth version {v}" for v in range(1, 25)]
    assert [e.action for e in entries] == ["create"] + ["update"] * 23
    for previous, entry in itertools.pairwise(entries):
        assert entry.changes["before"] == previous.changes["after"]  # nothing written unseen


def test_simultaneous_recommendations_record_a_change_once(
    client: TestClient,
    services: Services,
    admin: dict[str, str],
    reviewer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # callers that all read the old recommendation before any of them wrote each stored the
    # change and audited it (and so sent its webhook) once per caller
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from splitlab.analysis.service import analyze
    from splitlab.decisions import service
    from splitlab.decisions.recommendation import Code
    from splitlab.store.audit import list_audit
    from tests.decisions.decision_helpers import recommend as store_recommendation

    create_running(client, admin, reviewer)
    analyze(services=services, key=KEY)
    store_recommendation(services, KEY, Code.SHIP_GLOBAL, variant="one-page")
    callers = 4
    everyone_read = threading.Barrier(callers, timeout=30)
    engine = service.recommend

    def after_all_read(*args: Any, **kwargs: Any) -> Any:
        everyone_read.wait()  # every caller has read SHIP_GLOBAL as the stored one
        return engine(*args, **kwargs)

    monkeypatch.setattr(service, "recommend", after_all_read)
    with ThreadPoolExecutor(callers) as pool:
        codes = list(
            pool.map(
                lambda _: service.recommend_experiment(services=services, key=KEY).code,
                range(callers),
            )
        )
    assert codes == [Code.KEEP_RUNNING] * callers
    with services.sessions() as session:
        changes = [
            e
            for e in list_audit(session=session, entity="experiment", entity_key=KEY)
            if e.action == "recommendation"
        ]
    assert len(changes) == 1 and changes[0].reason.startswith("SHIP_GLOBAL → KEEP_RUNNING")

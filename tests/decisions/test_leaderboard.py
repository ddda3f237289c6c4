"""The leaderboard read from the app store (SQLite and PostgreSQL): variant payloads and a
stored snapshot become configurations with listed prices, effects and sparklines; the
frontier on a four-arm experiment is pinned; a warm read takes summaries from the cache and
a new snapshot replaces them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from splitlab.analysis.snapshot import Snapshot
from splitlab.decisions import leaderboard as lb
from splitlab.domain import Status
from splitlab.services import Services
from splitlab.store.snapshots import save_snapshot
from splitlab.store.variant_payloads import variant_payloads
from tests.decisions.decision_helpers import make_experiment
from tests.decisions.snapshots import row, snapshot

ARMS = ("control", "one-page", "two-page", "three-page")
PRICES = {"control": 0.003, "one-page": 0.001, "two-page": 0.002, "three-page": 0.0025}


def _metric(key: str, direction: str, kind: str, quantile: float | None = None) -> dict[str, Any]:
    return {
        "role": "secondary",
        "margin": None,
        "definition": {
            "key": key,
            "name": key,
            "kind": kind,
            "direction": direction,
            "quantile": quantile,
        },
    }


def _payload(key: str, *, quality_shift: float = 0.0) -> dict[str, Any]:
    quality = {"one-page": (-0.05, (-0.07, -0.03), 0.001), "two-page": (-0.01, (-0.03, 0.01), 0.3),
               "three-page": (-0.06, (-0.08, -0.04), 0.001)}  # fmt: skip
    latency = {"one-page": (-0.3, (-0.35, -0.25)), "two-page": (-0.1, (-0.15, -0.05)),
               "three-page": (-0.05, (-0.1, 0.0))}  # fmt: skip
    rows = []
    for arm in ARMS[1:]:
        rel, ci, p = quality[arm]
        rows.append(
            row("model-quality", arm, rel=rel + quality_shift, ci=ci, p=p, control_mean=0.8)
        )
        lrel, lci = latency[arm]
        rows.append(row("latency-p95", arm, rel=lrel, ci=lci, p=0.001, control_mean=200.0))
    snap = snapshot(
        metrics=[
            _metric("model-quality", "increase", "ratio"),
            _metric("latency-p95", "decrease", "quantile", 0.95),
        ],
        rows=rows,
        variants=ARMS,
        key=key,
        snapshot_id=None,
    )
    payload = snap.to_json()
    keep = set(Snapshot.model_fields["daily"].annotation.__args__[0].model_fields)  # type: ignore[union-attr]
    daily = []
    for d in range(3):
        for r in rows:
            if r.metric != "model-quality":
                continue
            point = {k: v for k, v in r.to_json().items() if k in keep}
            point["day"] = (date(2024, 5, 1) + timedelta(days=d)).isoformat()
            point["control_mean"] = 0.8 + d / 100
            point["treatment_mean"] = (r.treatment_mean or 0) + d / 100
            daily.append(point)
    payload["daily"] = daily
    Snapshot.from_json(payload)  # a valid stored snapshot
    return payload


def _store(services: Services, key: str, payload: dict[str, Any]) -> int:
    with services.sessions.begin() as session:
        saved = save_snapshot(
            session=session, key=key, settings_hash="h", watermark="w", payload=payload,
            duration_ms=1.0,
        )  # fmt: skip
        return saved.id


@pytest.fixture
def stored(services: Services) -> Services:
    variants = [
        {"key": arm, "weight": 0.25, "is_control": arm == "control",
         "payload": {"model": f"model-{arm}", "cost_per_request": PRICES[arm]}}
        for arm in ARMS
    ]  # fmt: skip
    make_experiment(services, "llm-a", to=Status.RUNNING, type="model_comparison",
                    variants=variants)  # fmt: skip
    make_experiment(services, "plain-feature", to=Status.RUNNING)  # a feature test: not listed
    _store(services, "llm-a", _payload("llm-a"))
    _store(services, "plain-feature", _payload("plain-feature"))
    lb.clear_cache()
    return services


def test_variant_payloads(stored: Services) -> None:
    with stored.sessions() as session:
        found = variant_payloads(session=session, keys=["llm-a", "nope"])
    assert list(found) == ["llm-a"]
    assert list(found["llm-a"]) == list(ARMS)
    assert found["llm-a"]["two-page"] == {"model": "model-two-page", "cost_per_request": 0.002}


def test_configurations_prices_and_frontier(stored: Services) -> None:
    entries = lb.leaderboard(services=stored)
    assert [(e.experiment, e.variant) for e in entries] == [("llm-a", a) for a in ARMS]
    by = {e.variant: e for e in entries}
    assert by["one-page"].config == "model-one-page"
    cost = by["one-page"].measures["cost"]
    assert cost.exact and cost.value == 0.001 and cost.delta == pytest.approx(-0.002)
    assert cost.significant and cost.good
    quality = by["two-page"].measures["quality"]
    assert quality.delta == pytest.approx(-0.008) and not quality.significant
    assert quality.se == pytest.approx(0.8 * 0.04 / (2 * 1.959963984540054))
    assert quality.spark == pytest.approx((0.792, 0.802, 0.812))  # one point per day
    assert by["control"].measures["quality"].spark == (0.8, 0.81, 0.82)
    assert by["control"].measures["latency"].spark == ()  # quantile: no daily series
    # pinned: three-page is worse than one-page and two-page on quality or latency and
    # dearer than both; one-page and two-page each win twice against it, the first is named
    assert [e.frontier for e in entries] == [True, True, True, False]
    assert by["three-page"].dominated_by == "one-page"
    assert by["control"].ranks == {"quality": 1, "cost": 4, "latency": 4}
    assert by["one-page"].ranks == {"quality": 3, "cost": 1, "latency": 1}
    everything = lb.leaderboard(services=stored, selection=lb.Selection(types=()))
    assert {e.experiment for e in everything} == {"llm-a", "plain-feature"}


def test_warm_reads_use_the_cache_and_a_new_snapshot_replaces_it(
    stored: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = lb.leaderboard(services=stored)

    def no_payloads(**_: Any) -> dict[int, Any]:
        raise AssertionError("a warm leaderboard must not read snapshot payloads")

    monkeypatch.setattr(lb, "snapshot_payloads", no_payloads)
    again = lb.leaderboard(services=stored)
    assert [e.to_json() for e in again] == [e.to_json() for e in first]
    monkeypatch.undo()
    _store(stored, "llm-a", _payload("llm-a", quality_shift=0.02))
    fresh = {e.variant: e for e in lb.leaderboard(services=stored)}
    assert fresh["one-page"].measures["quality"].rel == pytest.approx(-0.03)


def test_the_cache_is_per_store(stored: Services, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Snapshot ids repeat across app stores: another store's summary is never used."""
    from splitlab.config import Settings
    from splitlab.store.db import make_engine
    from splitlab.store.migrate import upgrade

    lb.leaderboard(services=stored)  # cache this store's summaries
    home = tmp_path_factory.mktemp("other-store")
    settings = stored.settings.model_copy(
        update={"home": home, "database_url": f"sqlite:///{home / 'app.db'}"}
    )
    assert isinstance(settings, Settings)
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    other = Services.open(settings)
    try:
        variants = [
            {"key": "control", "weight": 0.5, "is_control": True, "payload": {"model": "a"}},
            {"key": "one-page", "weight": 0.5, "payload": {"model": "b"}},
        ]
        make_experiment(other, "llm-b", to=Status.RUNNING, type="prompt", variants=variants)
        payload = _payload("llm-b")
        payload["units"] = payload["units"][:2]
        payload["results"] = [r for r in payload["results"] if r["variant"] == "one-page"]
        payload["daily"] = [r for r in payload["daily"] if r["variant"] == "one-page"]
        assert _store(other, "llm-b", payload) == 1  # the same id as llm-a's first snapshot
        entries = lb.leaderboard(services=other)
        assert [(e.experiment, e.variant) for e in entries] == [
            ("llm-b", "control"),
            ("llm-b", "one-page"),
        ]
    finally:
        other.close()

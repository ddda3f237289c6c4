"""The model / prompt leaderboard (``/models``) and the quality, cost and performance overlay
(``/experiments/{key}/ml``) over demo experiments: numbers read from the stored snapshots,
the frontier checked against a direct reading of its definition, filters and sort in the
URL (422 for values the view does not know), CSV and JSON twins, links to variant pages."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats as sps

from splitlab.analysis.service import latest
from splitlab.app import create_app
from splitlab.services import Services
from tests.stats.test_pareto import direct
from tests.web.ml_helpers import open_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    services = open_demo(tmp_path_factory.mktemp("models"))
    yield services
    services.close()


def twin(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params | {"format": "json"})
    assert response.status_code == 200, response.text
    return response.json()


def by_arm(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["experiment"], e["variant"]): e for e in data["entries"]}


def test_anonymous_visitors_are_sent_to_log_in(demo: Services) -> None:
    with TestClient(create_app(services=demo)) as client:
        for path in ("/models", "/experiments/distilled-ranker/ml"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"] == "/login"


def test_entries_carry_the_snapshot_numbers(demo: Services, vic: TestClient) -> None:
    data = twin(vic, "/models")
    arms = by_arm(data)
    assert {k for k, _ in arms} == {
        "distilled-ranker",
        "support-prompt-steps",
        "payments-4-2-canary",
    }
    snap = latest(services=demo, key="distilled-ranker")
    base, distilled = arms["distilled-ranker", "baseline"], arms["distilled-ranker", "distilled"]
    assert base["config"] == "ranker-xl-2024-06 · max_tokens=512" and base["is_control"]
    assert distilled["config"] == "ranker-distilled-s · max_tokens=512"
    for part, metric in (("quality", "ml-quality"), ("cost", "ml-cost-per-request"),
                         ("latency", "ml-latency-p95")):  # fmt: skip
        row = snap.result(metric, "distilled")
        got = distilled[part]
        assert got["metric"] == metric
        assert got["value"] == row.treatment_mean and base[part]["value"] == row.control_mean
        assert got["delta"] == row.abs_effect
        assert (got["ci_low"], got["ci_high"]) == (row.abs_ci_low, row.abs_ci_high)
        assert got["p_value"] == row.p_value_adjusted
        assert row.abs_ci_low is not None and row.abs_ci_high is not None
        z = sps.norm.ppf(0.975)  # ratio and quantile rows are z intervals (df null)
        assert row.df is None
        assert got["se"] == pytest.approx((row.abs_ci_high - row.abs_ci_low) / (2 * z), rel=1e-12)
        assert base[part]["se"] == 0.0
    # the distilled ranker: cheaper and faster, significantly; quality significantly lower
    assert distilled["cost"]["good"] and distilled["cost"]["significant"]
    assert distilled["latency"]["good"] and distilled["latency"]["significant"]
    assert distilled["quality"]["good"] is False and distilled["quality"]["significant"]
    assert distilled["ranks"] == {"quality": 2, "cost": 1, "latency": 1}
    # quantile metrics have no daily series; ratio metrics one point per day
    assert distilled["latency"]["spark"] == []
    assert len(distilled["quality"]["spark"]) == len(snap.days)
    assert distilled["quality"]["spark"][-1] == pytest.approx(distilled["quality"]["value"])


def _oriented(entry: dict[str, Any]) -> tuple[list[float], list[float]]:
    est, se = [], []
    for part in ("quality", "cost", "latency"):
        m = entry[part]
        if m is None:
            est.append(math.nan)
            se.append(math.nan)
            continue
        sign = 1.0 if m["higher_is_better"] else -1.0
        if m["exact"]:
            est.append(sign * m["value"])
            se.append(0.0)
        else:
            est.append(0.0 if m["delta"] is None else sign * m["delta"])
            se.append(m["se"])
    return est, se


def test_frontier_matches_a_direct_check(vic: TestClient) -> None:
    data = twin(vic, "/models")
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in data["entries"]:
        groups.setdefault(entry["experiment"], []).append(entry)
    z = float(sps.norm.ppf(0.975))
    for entries in groups.values():
        pairs = [_oriented(e) for e in entries]
        dominated, _ = direct(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), z)
        assert [not e["frontier"] for e in entries] == dominated
    arms = by_arm(data)
    # pinned: the step-by-step prompt resolves significantly more and nothing else is
    # measured, so it dominates the current prompt; the ranker trade-off keeps both
    assert arms["support-prompt-steps", "current"]["dominated_by"] == "step_by_step"
    assert arms["support-prompt-steps", "step_by_step"]["frontier"]
    assert arms["distilled-ranker", "baseline"]["frontier"]
    assert arms["distilled-ranker", "distilled"]["frontier"]
    assert sorted(c["config"] for c in data["configurations"] if c["frontier"] == 0) == [
        "support-v3 · gpt-4o-mini"
    ]


def test_filters_and_sort_in_the_url(vic: TestClient) -> None:
    only = twin(vic, "/models", type="prompt")
    assert {e["experiment"] for e in only["entries"]} == {"support-prompt-steps"}
    assert only["filters"]["type"] == ["prompt"]
    found = twin(vic, "/models", q="DISTILLED-s")
    assert [e["variant"] for e in found["entries"]] == ["distilled"]
    assert found["entries"][0]["frontier"]  # the frontier is of the whole experiment
    running = twin(vic, "/models", status="running")
    assert {e["status"] for e in running["entries"]} == {"running"}
    cheap = twin(vic, "/models", sort="-cost")["entries"]
    priced = [e["cost"]["value"] for e in cheap if e["cost"]]
    assert priced == sorted(priced) and cheap[0]["variant"] == "distilled"
    assert all(e["cost"] is None for e in cheap[len(priced) :])  # missing values last
    dear = [e["cost"]["value"] for e in twin(vic, "/models", sort="cost")["entries"] if e["cost"]]
    assert dear == sorted(dear, reverse=True)
    quality = twin(vic, "/models", sort="-quality", type="all")["entries"]
    assert quality[0]["experiment"] == "distilled-ranker"  # 0.78 beats a 0.46 resolution rate


@pytest.mark.parametrize(
    "params",
    [
        {"type": "nope"},
        {"status": "finished"},
        {"sort": "price"},
        {"sort": "--cost"},
        {"format": "xml"},
        {"q": "x" * 201},
        {"q": "a\x01b"},
        {"page": "0"},
        {"page": "x"},
    ],
)
def test_bad_filters_are_422(vic: TestClient, params: dict[str, str]) -> None:
    response = vic.get("/models", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_page_links_each_configuration_to_its_variant(vic: TestClient) -> None:
    html = vic.get("/models").text
    assert 'href="/experiments/distilled-ranker/variants/distilled"' in html
    assert 'href="/experiments/distilled-ranker/ml"' in html
    assert 'href="/canary/payments-4-2-canary">live monitor' in html  # running: monitored
    assert 'href="/canary/distilled-ranker"' not in html  # in readout: nothing to watch
    assert "★ frontier" in html and "dominated" in html
    assert "<polyline points=" in html
    assert "significant, worse" in html and "significant, better" in html


def test_pages_of_rows(vic: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from splitlab.web import models

    monkeypatch.setattr(models, "PER_PAGE", 4)
    first = vic.get("/models", params={"sort": "experiment"}).text
    assert "Rows 1–4 of 6" in first and 'rel="next"' in first and 'rel="prev"' not in first
    second = vic.get("/models", params={"sort": "experiment", "page": "2"}).text
    assert "Rows 5–6 of 6" in second and 'rel="prev"' in second
    assert "sort=experiment" in second.split('rel="prev"')[0].rsplit("href=", 1)[1]
    beyond = vic.get("/models", params={"page": "99"}).text  # past the end: the last page
    assert "page 2 of 2" in beyond
    assert len(twin(vic, "/models", page="2")["entries"]) == 6  # the twin holds every row


def test_csv(vic: TestClient) -> None:
    response = vic.get("/models", params={"format": "csv", "sort": "experiment"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 6
    distilled = next(r for r in rows if r["variant"] == "distilled")
    assert distilled["cost_metric"] == "ml-cost-per-request"
    assert distilled["frontier"] == "True"


def test_overlay(demo: Services, vic: TestClient) -> None:
    data = twin(vic, "/experiments/distilled-ranker/ml")
    assert data["roles"]["quality"] == "ml-quality"
    assert data["roles"]["latency"] == ["ml-latency-p95"]
    base, distilled = data["variants"]
    snap = latest(services=demo, key="distilled-ranker")
    cost = snap.result("ml-cost-per-request", "distilled")
    quality = snap.result("ml-quality", "distilled")
    assert cost.control_mean is not None and cost.treatment_mean is not None
    assert quality.control_mean is not None and quality.treatment_mean is not None
    figures = distilled["figures"]
    c0, c1 = cost.control_mean, cost.treatment_mean
    q0, q1 = quality.control_mean, quality.treatment_mean
    assert figures["savings_pct"] == pytest.approx((c0 - c1) / c0 * 100, rel=1e-12)
    assert figures["efficiency_gain_pct"] == pytest.approx(((q1 / c1) / (q0 / c0) - 1) * 100)
    assert (
        figures["roi_pct"] == pytest.approx((c0 - c1) / c1 * 100)
        and figures["roi_basis"] == "savings"
    )
    assert distilled["cost"]["exact"] is False and base["figures"] is None
    assert cost.abs_ci_low is not None and cost.abs_ci_high is not None
    assert figures["savings_ci"] == [-cost.abs_ci_high, -cost.abs_ci_low]
    valued = twin(vic, "/experiments/distilled-ranker/ml", value="0.01")["variants"][1]["figures"]
    assert valued["roi_basis"] == "savings+quality"
    assert valued["roi_pct"] == pytest.approx(((q1 - q0) * 0.01 + c0 - c1) / c1 * 100)
    swapped = twin(vic, "/experiments/distilled-ranker/ml", quality="ml-ctr")
    assert swapped["roles"]["quality"] == "ml-ctr"
    html = vic.get("/experiments/distilled-ranker/ml").text
    assert 'href="/experiments/distilled-ranker/variants/distilled"' in html
    assert "Efficiency gain" in html


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf"])
def test_overlay_bad_value_is_422(vic: TestClient, value: str) -> None:
    response = vic.get("/experiments/distilled-ranker/ml", params={"value": value})
    assert response.status_code == 422


def test_overlay_unknown_experiment_is_404(vic: TestClient) -> None:
    assert vic.get("/experiments/nope/ml").status_code == 404


def test_cli_models_and_canary(demo: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """``splitlab models`` and ``splitlab canary`` read the same numbers as the pages."""
    import json

    from typer.testing import CliRunner

    from splitlab.cli import app

    monkeypatch.setenv("SPLITLAB_HOME", str(demo.settings.home))
    monkeypatch.setenv("SPLITLAB_DATABASE_URL", demo.settings.resolved_database_url())
    for name in ("SPLITLAB_AUTH", "SPLITLAB_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    from_cli = {(e["experiment"], e["variant"]): e for e in json.loads(result.output)}
    assert set(from_cli) == {
        ("distilled-ranker", "baseline"), ("distilled-ranker", "distilled"),
        ("support-prompt-steps", "current"), ("support-prompt-steps", "step_by_step"),
        ("payments-4-2-canary", "stable"), ("payments-4-2-canary", "canary"),
    }  # fmt: skip
    snap = latest(services=demo, key="distilled-ranker")
    assert from_cli["distilled-ranker", "distilled"]["quality"]["delta"] == (
        snap.result("ml-quality", "distilled").abs_effect
    )
    text = runner.invoke(app, ["models", "--type", "prompt"]).output
    assert "support-prompt-steps/current support-v3 · gpt-4o-mini" in text
    assert "dominated by step_by_step" in text and "distilled" not in text
    canary = runner.invoke(app, ["canary", "payments-4-2-canary"])
    assert canary.exit_code == 0, canary.output
    assert "engine: ROLLBACK" in canary.output and "— worse" in canary.output
    assert "Automatic rollback" in canary.output
    missing = runner.invoke(app, ["canary", "nope"])
    assert missing.exit_code == 1 and "no experiment 'nope'" in missing.output

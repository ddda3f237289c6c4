"""Per-unit tables end to end as a user meets them: a ``source: units`` metric created through
the API, exposures and ``splitlab import units users.csv --map unit_id=user_id`` from the
CLI, results from ``GET /api/experiments/{key}/results`` — checked against scipy on the
file's values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from splitlab.app import create_app
from splitlab.cli import app
from splitlab.config import Settings

runner = CliRunner()
METRICS = [
    {"key": "conversion", "kind": "binary", "event": "purchase"},
    {"key": "revenue_30d", "kind": "sum", "source": "units", "column": "revenue_30d"},
]
EXPERIMENT = {
    "key": "checkout",
    "hypothesis": "one page converts better",
    "variants": [
        {"key": "control", "weight": 0.5, "is_control": True},
        {"key": "b", "weight": 0.5},
    ],
    "metrics": {"primary": "conversion", "secondary": ["revenue_30d"]},
}


def ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SPLITLAB_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("SPLITLAB_AUTH", "off")
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0
    with TestClient(create_app(Settings())) as http:
        for metric in METRICS:
            ok(http.post("/api/metrics", json=metric))
        ok(http.post("/api/experiments", json=EXPERIMENT))
        ok(http.post("/api/experiments/checkout/transitions", json={"to": "review"}))
        ok(
            http.post(
                "/api/experiments/checkout/reviews", json={"decision": "approve", "comment": "ok"}
            )
        )
        ok(http.post("/api/experiments/checkout/transitions", json={"to": "running"}))
    yield tmp_path / "data"


def test_import_units_and_read_results(home: Path, tmp_path: Path) -> None:
    exposures = tmp_path / "exposures.csv"
    users = tmp_path / "users.csv"
    arms: dict[str, list[float]] = {"control": [], "b": []}
    exposure_lines = ["experimentKey,variantKey,userKey"]
    user_lines = ["user_id,revenue_30d,country"]
    for k in range(120):
        variant = "b" if k % 2 else "control"
        exposure_lines.append(f"checkout,{variant},u{k}")
        if k % 5 == 0:
            arms[variant].append(0.0)  # no row in the unit table: 0
            continue
        value = (k * 37 % 101) / 4 + (3.0 if variant == "b" else 0.0)
        arms[variant].append(value)
        user_lines.append(f"u{k},{value},de")
    user_lines.append("stranger,999,fr")
    user_lines.append(",5,fr")  # no unit id: rejected
    exposures.write_text("\n".join(exposure_lines) + "\n")
    users.write_text("\n".join(user_lines) + "\n")
    assert runner.invoke(app, ["import", "exposures", str(exposures)]).exit_code == 0

    preview = runner.invoke(
        app, ["import", "units", str(users), "--map", "unit_id=user_id", "--preview"]
    )
    assert preview.exit_code == 0, preview.output
    assert "revenue_30d (value)" in preview.output and "country (attribute)" in preview.output
    done = runner.invoke(app, ["import", "units", str(users), "--map", "unit_id=user_id"])
    assert done.exit_code == 0, done.output
    assert "accepted 97 units, 97 values written" in done.output
    assert "1 × unit_id: is required (rows 98)" in done.output

    listed = runner.invoke(app, ["metrics", "list"])
    assert "units:revenue_30d" in listed.output
    exported = runner.invoke(app, ["export", "checkout"])
    assert exported.exit_code == 0, exported.output
    assert "source: units" in exported.output and "column: revenue_30d" in exported.output
    assert "event: ''" not in exported.output
    contract = tmp_path / "contract.yaml"
    contract.write_text(exported.output)
    applied = runner.invoke(app, ["apply", "-f", str(contract)])
    assert applied.exit_code == 0, applied.output  # the YAML contract round-trips

    with TestClient(create_app(Settings())) as http:
        ok(http.post("/api/experiments/checkout/analyze"))
        snapshot = ok(http.get("/api/experiments/checkout/results"))
    row = next(
        r
        for r in snapshot["results"]
        if r["metric"] == "revenue_30d" and r.get("segment") is None and r["variant"] == "b"
    )
    welch = scipy_stats.ttest_ind(arms["b"], arms["control"], equal_var=False)
    assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    assert row["abs_effect"] == pytest.approx(
        sum(arms["b"]) / 60 - sum(arms["control"]) / 60, rel=1e-9
    )
    assert snapshot["settings"]["metrics"][1]["definition"]["source"] == "units"

    # an exploratory breakdown from the CLI (exposures without attributes: one "(none)" cell)
    adhoc = runner.invoke(app, ["analyze", "checkout", "--breakdown", "country"])
    assert adhoc.exit_code == 0, adhoc.output
    assert "EXPLORATORY breakdown by country" in adhoc.output
    assert "country=(none)" in adhoc.output or "(none)" in adhoc.output
    bad = runner.invoke(app, ["analyze", "checkout", "--breakdown", "a,b,c"])
    assert bad.exit_code == 1 and "breakdown" in bad.output


def test_import_units_refuses_a_file_without_numbers(home: Path, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("unit_id\nu1\n")
    result = runner.invoke(app, ["import", "units", str(users)])
    assert result.exit_code == 1
    assert "numeric or text column" in result.output

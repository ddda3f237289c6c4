"""Report exports of a simulated, analysed experiment: each format opens (PDF parsed with
pypdf, HTML parsed strictly by html5lib and free of external resources, CSV round-trips,
JSON carries the recommendation), through the service, the API and the CLI."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import html5lib
import pypdf
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from splitlab.analysis import latest
from splitlab.config import Settings
from splitlab.decisions.readout import metric_infos
from splitlab.decisions.reports import (
    CSV_COLUMNS,
    MEDIA_TYPES,
    ReportFormat,
    experiment_report,
    load_inputs,
    render_report,
)
from splitlab.decisions.service import recommend_experiment
from splitlab.services import Services
from splitlab.store.db import make_engine
from splitlab.store.migrate import upgrade
from tests.decisions.report_helpers import advice, simulate
from tests.decisions.snapshots import metric, snapshot
from tests.decisions.snapshots import row as result_row

KEY = "multivariant"


@pytest.fixture
def simulated(services: Services) -> str:
    return simulate(services, KEY)


def pdf_text(content: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


EXTERNAL_ATTRIBUTES = ("src", "href", "xlink:href", "action", "poster", "data", "srcset")


def external_resources(content: bytes) -> list[str]:
    """Attribute values that point outside the document, after a strict parse."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    tree = parser.parse(content)
    found = []
    for element in tree.iter():
        for name, value in element.attrib.items():
            local = name.split("}")[-1]
            if local in EXTERNAL_ATTRIBUTES and ("//" in value or ":" in value.split("/")[0]):
                found.append(f"{element.tag} {name}={value}")
        if element.tag == "link" or (element.tag == "script" and element.get("src")):
            found.append(element.tag)
    return found


def test_every_format_opens_and_says_the_same_thing(services: Services, simulated: str) -> None:
    inputs = load_inputs(services=services, key=simulated)
    recommendation = inputs.recommendation
    assert recommendation == recommend_experiment(services=services, key=simulated)
    assert inputs.snapshot.snapshot_id == recommendation.snapshot_id
    snapshot = inputs.snapshot
    names = [info.name for info in metric_infos(snapshot).values()]

    pdf = experiment_report(services=services, key=simulated, format="pdf")
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert recommendation.code.value in text
    assert "Checkout redesign A/B/C" in text
    for key in metric_infos(snapshot):
        assert key in text  # the results table names every metric
    assert "Conversion for treatment_a vs control" in text  # the readout

    html = experiment_report(services=services, key=simulated, format="html")
    assert external_resources(html) == []
    assert b"http://" not in html and b"https://" not in html
    page = html.decode()
    assert page.count("<svg") == 2  # the forest plot and the daily series
    assert recommendation.code.value in page
    for name in names:
        assert name in page

    document = json.loads(experiment_report(services=services, key=simulated, format="json"))
    assert document["recommendation"]["code"] == recommendation.code.value
    assert document["recommendation"]["reasons"] == [
        r.model_dump(mode="json") for r in recommendation.reasons
    ]
    assert document["recommendation"]["evidence"] == json.loads(json.dumps(recommendation.evidence))
    assert document["snapshot"]["results"] == snapshot.to_json()["results"]
    assert document["readout_source"] == "deterministic"
    assert document["readout"]["sections"][0]["key"] == "hypothesis"

    markdown = experiment_report(services=services, key=simulated, format="md").decode()
    assert markdown.startswith("# Checkout redesign A/B/C\n")
    assert "## Results" in markdown and "| metric | variant | segment |" in markdown


def _float(text: str) -> float | None:
    return float(text) if text else None


def test_csv_round_trips_one_row_per_metric_variant_segment(
    services: Services, simulated: str
) -> None:
    content = experiment_report(services=services, key=simulated, format=ReportFormat.CSV)
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    snapshot = latest(services=services, key=simulated)
    assert len(rows) == len(snapshot.results)
    assert tuple(rows[0]) == CSV_COLUMNS
    segments = {(r["segment_name"], r["segment_value"]) for r in rows}
    assert ("", "") in segments and ("country", "US") in segments
    for row, result in zip(rows, snapshot.results, strict=True):
        assert (row["metric"], row["variant"]) == (result.metric, result.variant)
        assert row["segment_name"] == (result.segment.name if result.segment else "")
        for column in ("rel_effect", "rel_ci_low", "p_value", "control_mean", "treatment_n"):
            value = getattr(result, column)
            expected = value if value is not None and math.isfinite(value) else None
            assert _float(row[column]) == expected  # exact: floats are written with repr


def test_render_report_is_pure_and_deterministic(services: Services, simulated: str) -> None:
    inputs = load_inputs(services=services, key=simulated)
    for kind in ReportFormat:
        made = [
            render_report(
                snapshot=inputs.snapshot,
                recommendation=inputs.recommendation,
                spec=inputs.spec,
                format=kind,
            )
            for _ in range(2)
        ]
        assert made[0] == made[1], kind


def test_api_serves_each_format_with_its_media_type(
    client: TestClient, services: Services, simulated: str, admin: dict[str, str]
) -> None:
    for kind in ReportFormat:
        response = client.get(f"/api/experiments/{simulated}/report.{kind.value}", headers=admin)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == MEDIA_TYPES[kind]
        assert response.headers["content-disposition"] == (
            f'attachment; filename="{simulated}-report.{kind.value}"'
        )
        assert response.content == experiment_report(services=services, key=simulated, format=kind)


def test_api_refuses_unknown_experiments_formats_and_strangers(
    client: TestClient, simulated: str, admin: dict[str, str]
) -> None:
    missing = client.get("/api/experiments/nope/report.md", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = client.get(f"/api/experiments/{simulated}/report.docx", headers=admin)
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "validation_error"
    assert client.get(f"/api/experiments/{simulated}/report.md").status_code == 401


def test_cli_writes_a_report_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from splitlab.cli import app

    home = tmp_path / "data"
    monkeypatch.setenv("SPLITLAB_HOME", str(home))
    for name in ("SPLITLAB_DATABASE_URL", "SPLITLAB_WAREHOUSE_URL", "SPLITLAB_AUTH"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(home=home)
    engine = make_engine(settings.resolved_database_url())
    upgrade(engine)
    engine.dispose()
    services = Services.open(settings)
    try:
        key = simulate(services, KEY)
    finally:
        services.close()
    runner = CliRunner()
    out = tmp_path / "r.csv"
    result = runner.invoke(app, ["report", key, "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = list(csv.DictReader(out.open()))
    assert {r["metric"] for r in rows} == {
        "mv-conversion",
        "mv-order-value",
        "mv-session-minutes",
        "mv-revenue",
    }
    pdf = tmp_path / "r.pdf"
    assert runner.invoke(app, ["report", key, "--format", "pdf", "-o", str(pdf)]).exit_code == 0
    assert pdf.read_bytes().startswith(b"%PDF-")
    refused = runner.invoke(app, ["report", key, "--format", "docx"])
    assert refused.exit_code == 1 and "--format must be one of md, html, pdf" in refused.output
    missing = runner.invoke(app, ["report", "nope", "--format", "md"])
    assert missing.exit_code == 1 and "nope" in missing.output


def test_hostile_names_stay_text_in_every_format() -> None:
    evil = "<script>alert(1)</script> 转化 ✓ | *x*"
    formula = '=HYPERLINK("x")'
    entry = metric("conv")
    entry["definition"]["name"] = evil
    rows = [
        result_row("conv", rel=0.1, ci=(0.05, 0.15), p=0.001),
        result_row("conv", rel=0.2, ci=(0.1, 0.3), p=0.001, segment=("country", formula)),
    ]
    snap = snapshot(metrics=[entry], rows=rows)
    made = {
        kind: render_report(snapshot=snap, recommendation=advice(), spec=None, format=kind)
        for kind in ReportFormat
    }
    html = made[ReportFormat.HTML].decode()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert external_resources(made[ReportFormat.HTML]) == []
    assert "转化 ✓" in html
    text = pdf_text(made[ReportFormat.PDF])  # Latin-1 core fonts: the rest prints as "?"
    assert "<script>alert(1)</script> ?? ?" in text and "SHIP_GLOBAL" in text
    rows_read = list(csv.DictReader(io.StringIO(made[ReportFormat.CSV].decode())))
    assert rows_read[0]["metric_name"] == evil
    assert rows_read[1]["segment_value"] == "'" + formula  # never a live formula
    assert rows_read[0]["rel_effect"] == "0.1"  # numbers, even negative ones, stay numbers
    markdown = made[ReportFormat.MD].decode()
    assert "\\<script\\>" in markdown and "\\| \\*x\\*" in markdown
    assert json.loads(made[ReportFormat.JSON])["snapshot"]["results"][1]["segment"] == {
        "name": "country",
        "value": formula,
    }


def test_api_llm_flag_without_a_provider_keeps_the_deterministic_readout(
    client: TestClient, simulated: str, admin: dict[str, str]
) -> None:
    url = f"/api/experiments/{simulated}/report.json"
    plain = client.get(url, headers=admin).json()
    asked = client.get(url, params={"llm": "true"}, headers=admin).json()
    assert asked["readout_source"] == "deterministic"
    assert "no LLM provider configured" in asked["llm"]["fallback_reason"]
    assert asked["readout"] == plain["readout"] and "llm" not in plain

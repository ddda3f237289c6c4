"""The intake wizard's metric table states the margin a guardrail inherits from its metric
definition when left empty, on its own scale (a bare number typed there is relative, so an
absolute default is not offered as a placeholder)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from splitlab.domain import Role
from tests.conftest import Keys
from tests.web.intake_helpers import log_in

METRICS = [
    {"key": "errors", "kind": "count", "event": "error", "margin": {"absolute": 0.5}},
    {"key": "latency", "kind": "sum", "event": "page_load", "margin": "5%"},
    {"key": "converted", "kind": "binary", "event": "purchase"},
]


def _margin_cell(page: str, key: str) -> str:
    found = re.search(rf'<input id="[^"]*" name="margin\.{key}"[^>]*>(.*?)</td>', page, re.S)
    assert found, key
    return found.group(0)


def test_metric_table_states_the_inherited_margin_on_its_scale(
    client: TestClient, keys: Keys, editor: dict[str, str]
) -> None:
    for metric in METRICS:
        assert client.post("/api/metrics", json=metric, headers=editor).status_code == 201
    body = {"key": "margins", "variants": [], "metrics": {}}
    assert client.post("/api/experiments", json=body, headers=editor).status_code == 201
    log_in(client, keys, "erin", Role.EDITOR)
    page = client.get("/experiments/new?draft=margins&step=3")
    assert page.status_code == 200
    errors = _margin_cell(page.text, "errors")
    assert 'placeholder=""' in errors and "empty: the metric's 0.5 (absolute)" in errors
    latency = _margin_cell(page.text, "latency")
    assert 'placeholder="0.05"' in latency and "empty: the metric's 5.0%" in latency
    assert "empty: the metric" not in _margin_cell(page.text, "converted")

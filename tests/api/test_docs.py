"""/docs and /redoc work offline; the OpenAPI document lists every operation's errors."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from splitlab.api.docs import ERROR_SCHEMA

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_files_the_server_serves(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assets = ASSET.findall(html.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 0, asset
    assert not EXTERNAL.findall(html.text), f"{page} names an external host"
    assert "/openapi.json" in html.text


def test_every_operation_documents_its_errors_in_the_error_shape(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["schemas"]["Error"] == ERROR_SCHEMA
    assert "HTTPValidationError" not in document["components"]["schemas"]
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) > 20
    for path, method, operation in operations:
        responses = operation["responses"]
        errors = {code for code in responses if code.startswith("4")}
        assert "422" in errors, (method, path)
        if path.startswith("/api/"):
            assert {"401", "403"} <= errors, (method, path)
        if "requestBody" in operation:
            assert {"400", "413"} <= errors, (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        for code in errors:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    limits = document["components"]["schemas"]["ExperimentSpec"]["properties"]
    assert limits["hypothesis"]["maxLength"] == 10_000
    assert limits["tags"]["maxItems"] == 50

"""The dashboard's own assets: plotly.js from the installed package and the favicon, so a page
asks nothing of the network and logs no 404."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_pages_link_assets_the_server_has(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert 'href="/static/favicon.svg"' in page.text
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.text.startswith("<svg")
    plotly = client.get("/assets/plotly.min.js")
    assert plotly.status_code == 200
    assert plotly.headers["content-type"].startswith("application/javascript")
    assert len(plotly.content) > 1_000_000  # the real bundle, not a stub

"""In Chromium: log in, see experiments, log out; a cross-site form post is refused."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import splitlab

pytestmark = pytest.mark.browser


def test_login_list_logout(
    server: str, server_env: dict[str, str], browser: object, tmp_path
) -> None:
    splitlab(
        server_env, "users", "create", "maya", "--role", "editor", "--password", "open-sesame-1"
    )
    contract = tmp_path / "exp.yaml"
    contract.write_text(
        "experiment:\n  key: hero-banner\n  name: Hero banner copy\n  team: growth\n"
    )
    splitlab(server_env, "apply", "-f", str(contract))

    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(server + "/")
    assert page.url.endswith("/login")
    page.fill("input[name=username]", "maya")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert "Wrong username or password" in page.content()
    page.fill("input[name=username]", "maya")
    page.fill("input[name=password]", "open-sesame-1")
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    page.goto(server + "/?status=all&range=all")  # the fleet shows active experiments by default
    assert page.locator("table.fleet-list").inner_text().count("hero-banner") == 1
    assert "Hero banner copy" in page.content()
    page.screenshot(path=str(tmp_path / "experiments.png"))
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "splitlab_session"]
    copied = {"cookie": f"splitlab_session={cookie['value']}"}
    assert httpx.get(server + "/api/experiments", headers=copied).status_code == 200
    page.click("text=Log out")
    page.wait_for_url(server + "/login")
    # the logout ended the session on the server: a copy of the old cookie is refused
    assert httpx.get(server + "/api/experiments", headers=copied).status_code == 401

    # a forged cross-site form post (no CSRF token) is refused
    forged = httpx.post(server + "/logout", data={})
    assert forged.status_code == 403
